// Per-epoch progress: a redrawn bar on a terminal, plain log lines otherwise.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace pw::app {

struct StepStats {
  std::int64_t step = 0;  // within the epoch, 1-based
  double loss = 0;        // running mean over the epoch
  double accuracy = 0;    // running train accuracy over the epoch, in [0, 1]
  double lr = 0;
  double images_per_sec = 0;
  double data_wait_fraction = 0;  // share of wall time spent waiting for batches
};

class Progress {
 public:
  // `bar` draws a bar (only when out is a terminal); otherwise a line every `log_every` steps.
  // A null `out` prints nothing (the ranks other than 0 of a data-parallel run).
  Progress(std::FILE* out, bool bar, std::int64_t log_every);
  void start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t steps_in_epoch);
  void update(const StepStats& s);
  // Ends the bar's line (if any) and prints `line`.
  void finish_epoch(const std::string& line);
  void message(const std::string& line);
  bool is_bar() const { return bar_; }

 private:
  std::FILE* out_;
  bool bar_;
  std::int64_t log_every_;
  std::int64_t epoch_ = 0, epochs_ = 0, steps_ = 0;
  std::chrono::steady_clock::time_point epoch_start_, last_draw_;
  bool drawn_ = false;
};

// "1:02:03" or "2:03".
std::string format_duration(double seconds);

}  // namespace pw::app
