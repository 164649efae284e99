#include "apps/train/budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace pw::app {

double parse_duration(const std::string& text, const std::string& flag) {
  auto bad = [&] {
    fail("[{}] expected a duration such as 90s, 30m, 2.5h, 1h30m or plain seconds, got '{}'", flag,
         text);
  };
  if (text.empty()) bad();
  const char* p = text.data();
  const char* const end = p + text.size();
  double total = 0;
  int previous_unit = 3;  // units come in the order h (2), m (1), s (0), each at most once
  while (p < end) {
    double value = 0;
    const auto [next, ec] = std::from_chars(p, end, value, std::chars_format::fixed);
    if (ec != std::errc() || next == p) bad();
    p = next;
    if (p == end) {  // a number without a unit: plain seconds, alone
      if (previous_unit != 3) bad();
      total = value;
      break;
    }
    const int unit = *p == 'h' ? 2 : *p == 'm' ? 1 : *p == 's' ? 0 : -1;
    if (unit < 0 || unit >= previous_unit) bad();
    previous_unit = unit;
    ++p;
    total += value * (unit == 2 ? 3600.0 : unit == 1 ? 60.0 : 1.0);
  }
  PW_CHECK(std::isfinite(total) && total > 0, "[{}] the duration must be positive, got '{}'", flag,
           text);
  // Finite and far from what step counts (int64) computed from it could not hold.
  constexpr double kMaxSeconds = 1000.0 * 24 * 3600;
  PW_CHECK(total <= kMaxSeconds, "[{}] the duration must be at most 1000 days, got '{}'", flag,
           text);
  return total;
}

std::optional<double> parse_time_budget(const std::string& text) {
  if (text.empty() || text == "none") return std::nullopt;
  return parse_duration(text, "--time-budget");
}

std::string describe_duration(double seconds) {
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  const auto s = static_cast<std::int64_t>(std::llround(seconds));
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
}

BudgetPlanner::BudgetPlanner(double budget, std::int64_t steps_per_epoch, std::int64_t eval_every,
                             double eval_in_steps, double epoch_end_guess)
    : budget_(budget),
      steps_per_epoch_(steps_per_epoch),
      eval_every_(eval_every),
      eval_in_steps_(eval_in_steps),
      epoch_end_guess_(epoch_end_guess) {
  PW_CHECK(steps_per_epoch > 0 && eval_every > 0,
           "[BudgetPlanner] steps_per_epoch and eval_every must be positive");
}

void BudgetPlanner::record_step(double seconds) {
  if (skipped_ < kSkippedSteps) {
    ++skipped_;
    return;
  }
  steps_.push_back(seconds);
  steps_sum_ += seconds;
  if (static_cast<int>(steps_.size()) > kWindow) {
    steps_sum_ -= steps_.front();
    steps_.pop_front();
  }
}

void BudgetPlanner::record_eval(double seconds) {
  eval_ = seconds;
}

void BudgetPlanner::record_epoch_end(double seconds) {
  epoch_ends_.push_back(seconds);
  if (epoch_ends_.size() > 5) epoch_ends_.pop_front();
}

bool BudgetPlanner::ready() const {
  return static_cast<int>(steps_.size()) >= kMeasuredSteps;
}

BudgetCosts BudgetPlanner::costs() const {
  BudgetCosts c;
  if (!steps_.empty()) {
    const std::size_t recent = std::min<std::size_t>(kRecent, steps_.size());
    const double recent_sum =
        std::accumulate(steps_.end() - static_cast<std::ptrdiff_t>(recent), steps_.end(), 0.0);
    c.step = std::max(steps_sum_ / static_cast<double>(steps_.size()),
                      recent_sum / static_cast<double>(recent));
  }
  c.eval = eval_ >= 0 ? eval_ : eval_in_steps_ * c.step;
  c.epoch_end = epoch_ends_.empty() ? epoch_end_guess_
                                    : *std::max_element(epoch_ends_.begin(), epoch_ends_.end());
  return c;
}

double BudgetPlanner::time_to_finish(std::int64_t total, std::int64_t done,
                                     std::int64_t next_epoch_end) const {
  const BudgetCosts c = costs();
  const std::int64_t last_epoch = (total + steps_per_epoch_ - 1) / steps_per_epoch_;
  const std::int64_t ends = std::max<std::int64_t>(0, last_epoch - next_epoch_end + 1);
  // Evaluations: the multiples of eval_every before the last epoch, and the last epoch.
  std::int64_t evals = 0;
  if (ends > 0) {
    auto multiples_upto = [&](std::int64_t n) { return n / eval_every_; };
    evals = multiples_upto(last_epoch - 1) - multiples_upto(next_epoch_end - 1) + 1;
  }
  return static_cast<double>(std::max<std::int64_t>(0, total - done)) * c.step +
         static_cast<double>(ends) * c.epoch_end + static_cast<double>(evals) * c.eval +
         c.epoch_end;  // the final save
}

std::int64_t BudgetPlanner::plan(double elapsed, std::int64_t done,
                                 std::int64_t next_epoch_end) const {
  const std::int64_t least = std::max<std::int64_t>(done, 1);
  auto fits = [&](std::int64_t total) {
    return elapsed + time_to_finish(total, done, next_epoch_end) <= budget_;
  };
  if (!fits(least)) return least;
  const double step = std::max(costs().step, 1e-6);
  std::int64_t lo = least;  // fits
  std::int64_t hi =
      done + static_cast<std::int64_t>(std::ceil(std::max(0.0, budget_ - elapsed) / step)) + 1;
  if (fits(hi)) return hi;  // only when the costs are degenerate (zero)
  while (hi - lo > 1) {     // fits(lo), !fits(hi)
    const std::int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

double SchedulePosition::advance(std::int64_t done, std::int64_t total) {
  const double end = static_cast<double>(total);
  const std::int64_t left = total - done;  // this step included
  position_ =
      left <= 0 ? end : std::min(end, position_ + (end - position_) / static_cast<double>(left));
  return position_;
}

double SchedulePosition::replan(std::int64_t from, std::int64_t warmup_from, std::int64_t to,
                                std::int64_t warmup_to, std::int64_t done) {
  if (to <= done) return position_ = static_cast<double>(to);
  const double w0 = static_cast<double>(warmup_from), w1 = static_cast<double>(warmup_to);
  if (position_ > w0 && from > warmup_from)
    position_ =
        w1 + (position_ - w0) * (static_cast<double>(to) - w1) / (static_cast<double>(from) - w0);
  position_ = std::min(position_, static_cast<double>(to));
  return position_;
}

}  // namespace pw::app
