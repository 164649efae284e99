#include "apps/train/metrics_log.h"

#include <fstream>

#include "io/file_io.h"

namespace pw::app {

void MetricsLog::load_until(std::int64_t global_step) {
  std::ifstream in(path_);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    // A line that is not a record of ours is dropped (value() would throw on other types).
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    const auto type = j.find("type"), step = j.find("global_step");
    if (type != j.end() && *type == "summary") continue;
    if (step != j.end() && !step->is_number_integer()) continue;
    if (step == j.end() || step->get<std::int64_t>() <= global_step) lines_.push_back(line);
  }
}

nlohmann::json MetricsLog::last_evaluation() const {
  for (auto it = lines_.rbegin(); it != lines_.rend(); ++it) {
    auto j = nlohmann::json::parse(*it, nullptr, false);
    if (j.is_object() && j["type"] == "epoch" && j.contains("test_accuracy") &&
        j["test_accuracy"].is_number())
      return j;
  }
  return nullptr;
}

void MetricsLog::flush() const {
  std::string text;
  for (const auto& l : lines_) text += l + "\n";
  write_file_atomic(path_.string(), text);
}

}  // namespace pw::app
