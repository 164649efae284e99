// metrics.jsonl, the record of a training run: one JSON object per line, of type "step" (every
// --log-every steps), "epoch" (train loss and accuracy, test loss and accuracy when evaluated,
// timing) and, when the run finishes, "summary". `vit plot` and the tests read it back.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pw::app {

// The log is kept in memory and rewritten whole (atomically) at every flush; it is small.
class MetricsLog {
 public:
  explicit MetricsLog(std::filesystem::path path) : path_(std::move(path)) {}
  // Keeps the records of an earlier run up to `global_step` (for resume); a finished run's
  // summary is dropped, to be written again when the resumed run finishes.
  void load_until(std::int64_t global_step);
  void add(const nlohmann::json& record) { lines_.push_back(record.dump()); }
  // The last epoch record with a test accuracy, or null.
  nlohmann::json last_evaluation() const;
  void flush() const;

 private:
  std::filesystem::path path_;
  std::vector<std::string> lines_;
};

}  // namespace pw::app
