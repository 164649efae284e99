// `vit train --time-budget`: how many optimizer steps fit in a wall-time budget, from the run's
// own measured speed. The run asks the planner after its steps and at every epoch end; the plan
// is the largest step count whose remaining steps, epoch ends (checkpoint, curves), evaluations
// (every --eval-every epochs and always after the last, possibly partial, epoch) and the final
// save all end within the budget. The schedule is then sized to that step count.
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace pw::app {

// Seconds in a duration written as "90s", "30m", "2.5h", "1h30m", "1h2m3s" or plain seconds
// ("45", "12.5"); anything else, or a duration that is not positive, is an error naming `flag`.
double parse_duration(const std::string& text, const std::string& flag = "--time-budget");

// The --time-budget flag: no budget for "" or "none", else parse_duration's seconds.
std::optional<double> parse_time_budget(const std::string& text);

// Seconds as a short duration: "1h30m", "2m05s", "9.5s".
std::string describe_duration(double seconds);

// What the planner expects each part of the remaining run to cost, in seconds.
struct BudgetCosts {
  double step = 0;       // one optimizer step, data loading included
  double eval = 0;       // one evaluation of the test set (every pass: raw, EMA, TTA)
  double epoch_end = 0;  // an epoch end besides its evaluation; also the final save
};

class BudgetPlanner {
 public:
  // `budget` seconds of wall time in all. Until an evaluation has been measured, it is estimated
  // as `eval_in_steps` times the step time (inference is about a third of a training step per
  // image); until an epoch end has been measured, it is `epoch_end_guess` seconds.
  BudgetPlanner(double budget, std::int64_t steps_per_epoch, std::int64_t eval_every,
                double eval_in_steps, double epoch_end_guess);

  // The wall time of one step (from the end of the previous one). The first kSkippedSteps of a
  // process are left out: they include one-time start-up (allocations, GEMM set-up).
  void record_step(double seconds);
  void record_eval(double seconds);
  void record_epoch_end(double seconds);
  // Whether enough steps have been measured to plan.
  bool ready() const;
  BudgetCosts costs() const;
  double budget() const { return budget_; }

  // Seconds from now to the end of a run that stops after `total` steps, `done` having been
  // taken, with the ends of epochs `next_epoch_end`, next_epoch_end + 1, ... (1-based) still
  // to come.
  double time_to_finish(std::int64_t total, std::int64_t done, std::int64_t next_epoch_end) const;
  // The largest step count that ends within the budget `elapsed` seconds into it; at least
  // `done` (stop now) and at least 1.
  std::int64_t plan(double elapsed, std::int64_t done, std::int64_t next_epoch_end) const;

  static constexpr int kSkippedSteps = 2;
  static constexpr int kMeasuredSteps = 3;  // steps measured before the first plan
  // The step time is the mean of the last kWindow steps, or of the last kRecent when that is
  // larger: a host that has just slowed down shortens the plan within a few steps (running over
  // the budget costs more than ending a little early), and one that speeds up again lengthens it
  // as the slow spell leaves the window.
  static constexpr int kWindow = 50;
  static constexpr int kRecent = 3;

 private:
  double budget_;
  std::int64_t steps_per_epoch_, eval_every_;
  double eval_in_steps_;
  double epoch_end_guess_;
  int skipped_ = 0;
  std::deque<double> steps_;
  double steps_sum_ = 0;
  double eval_ = -1;
  std::deque<double> epoch_ends_;  // the last few; the largest is used
};

// Where a budgeted run's lr schedule stands, in steps of the current plan (real-valued). The plan
// follows the measured speed, which drifts on a shared host; the position never jumps with it. A
// step advances it by what is left of the schedule spread evenly over the steps left, and a new
// plan keeps the warmup in steps and the share of the rest already done. So the lr moves
// monotonically through the schedule whatever the plan does (a slow spell no longer sends it to
// its minimum and back up) and reaches the schedule's end exactly at the last planned step.
// Without replans the position is the step count, as in an unbudgeted run.
class SchedulePosition {
 public:
  explicit SchedulePosition(double position = 0) : position_(position) {}
  // After a step: `done` steps had been taken before it, of `total` planned.
  double advance(std::int64_t done, std::int64_t total);
  // The plan changes from `from` steps (whose schedule warms up for `warmup_from` steps) to `to`
  // steps (warming up for `warmup_to`), `done` steps having been taken. A plan that ends now
  // (to <= done) puts the position at its end: the run's schedule ends where the run does.
  double replan(std::int64_t from, std::int64_t warmup_from, std::int64_t to,
                std::int64_t warmup_to, std::int64_t done);
  double value() const { return position_; }

 private:
  double position_;
};

}  // namespace pw::app
