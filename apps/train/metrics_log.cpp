#include "apps/train/metrics_log.h"

#include <fstream>

#include "io/file_io.h"

namespace pw::app {

void MetricsLog::load_until(std::int64_t global_step) {
  std::ifstream in(path_);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (j.value("type", "") == "summary") continue;
    if (j.value("global_step", std::int64_t{0}) <= global_step) lines_.push_back(line);
  }
}

nlohmann::json MetricsLog::last_evaluation() const {
  for (auto it = lines_.rbegin(); it != lines_.rend(); ++it) {
    auto j = nlohmann::json::parse(*it, nullptr, false);
    if (!j.is_discarded() && j.value("type", "") == "epoch" && j.contains("test_accuracy"))
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
