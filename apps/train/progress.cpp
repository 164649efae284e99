#include "apps/train/progress.h"

#include <fmt/format.h>
#include <unistd.h>

namespace pw::app {

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::FILE* out, bool bar, std::int64_t log_every)
    : out_(out), bar_(out && bar && isatty(fileno(out))), log_every_(log_every) {}

void Progress::start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t steps) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = steps;
  epoch_start_ = std::chrono::steady_clock::now();
  last_draw_ = {};
  drawn_ = false;
}

void Progress::update(const StepStats& s) {
  if (!out_) return;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - epoch_start_).count();
  const double eta =
      s.step > 0 ? elapsed / static_cast<double>(s.step) * static_cast<double>(steps_ - s.step) : 0;
  const std::string stats = fmt::format(
      "loss {:.4f} acc {:5.1f}% lr {:.2e} {:.0f} img/s wait {:.0f}% ETA {}", s.loss,
      100 * s.accuracy, s.lr, s.images_per_sec, 100 * s.data_wait_fraction, format_duration(eta));
  if (bar_) {
    if (s.step != steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    const auto filled = static_cast<int>(kWidth * s.step / std::max<std::int64_t>(steps_, 1));
    fmt::print(out_, "\r\033[Kepoch {}/{} [{}{}] {}/{} {}", epoch_, epochs_,
               std::string(filled, '#'), std::string(kWidth - filled, '.'), s.step, steps_, stats);
    std::fflush(out_);
    drawn_ = true;
  } else if (s.step % log_every_ == 0 || s.step == steps_) {
    fmt::print(out_, "epoch {}/{} step {}/{} {}\n", epoch_, epochs_, s.step, steps_, stats);
    std::fflush(out_);
  }
}

void Progress::finish_epoch(const std::string& line) {
  if (!out_) return;
  if (drawn_) fmt::print(out_, "\n");
  drawn_ = false;
  message(line);
}

void Progress::message(const std::string& line) {
  if (!out_) return;
  if (drawn_) fmt::print(out_, "\n");
  drawn_ = false;
  fmt::print(out_, "{}\n", line);
  std::fflush(out_);
}

}  // namespace pw::app
