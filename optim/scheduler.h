// Learning-rate schedulers (torch.optim.lr_scheduler). Each scheduler computes the lr of every
// group in closed form from the group's base lr (its initial_lr) and the step count, so no
// multiplicative drift accumulates. step() may be called per batch or per epoch: the caller
// decides what a "step" is. Construction applies the lr of step 0, as PyTorch does.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace pw::optim {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Advances one step and writes the new lrs into the optimizer's groups.
  void step();
  // Jumps to step `epoch` and writes its lrs (used by SequentialLR for its children).
  void set_epoch(std::int64_t epoch);
  // The lrs last written, one per group.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  // Steps taken since construction (0 right after construction).
  std::int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  Optimizer& optimizer() const { return *optimizer_; }
  virtual std::string name() const = 0;
  // The lr of group `group` at step `epoch` (the closed form).
  virtual double lr_at(std::size_t group, std::int64_t epoch) const = 0;

  // {"scheduler": name, "last_epoch", "base_lrs", "last_lr"} (plus a scheduler's own fields).
  virtual nlohmann::json state_dict() const;
  // Restores a state_dict of the same scheduler kind; the optimizer's lrs are restored by the
  // optimizer's own load_state_dict (as in PyTorch), and are not touched here.
  virtual void load_state_dict(const nlohmann::json& state);

 protected:
  // Reads base_lrs from the groups' initial_lr. Derived constructors end with initial_step().
  explicit LRScheduler(Optimizer& optimizer);
  // Applies step 0.
  void initial_step() { set_epoch(0); }
  // Writes the lrs of last_epoch_ into the groups and last_lr_.
  virtual void apply();

  Optimizer* optimizer_;
  std::vector<double> base_lrs_;
  std::int64_t last_epoch_ = -1;
  std::vector<double> last_lr_;
};

// lr = base * gamma^floor(epoch / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);
  std::string name() const override { return "StepLR"; }
  double lr_at(std::size_t group, std::int64_t epoch) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

// lr = base * gamma^(number of milestones <= epoch)
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma = 0.1);
  std::string name() const override { return "MultiStepLR"; }
  double lr_at(std::size_t group, std::int64_t epoch) const override;

 private:
  std::vector<std::int64_t> milestones_;  // sorted
  double gamma_;
};

// lr = base * gamma^epoch
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);
  std::string name() const override { return "ExponentialLR"; }
  double lr_at(std::size_t group, std::int64_t epoch) const override;

 private:
  double gamma_;
};

// lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2   (no restarts)
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min = 0.0);
  std::string name() const override { return "CosineAnnealingLR"; }
  double lr_at(std::size_t group, std::int64_t epoch) const override;

 private:
  std::int64_t T_max_;
  double eta_min_;
};

// lr = base * (start + (end - start) * min(epoch, total_iters) / total_iters): linear warmup.
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3.0, double end_factor = 1.0,
           std::int64_t total_iters = 5);
  std::string name() const override { return "LinearLR"; }
  double lr_at(std::size_t group, std::int64_t epoch) const override;

 private:
  double start_factor_, end_factor_;
  std::int64_t total_iters_;
};

// lr = base * factor before total_iters, base from then on (factor 1: a constant lr).
class ConstantLR : public LRScheduler {
 public:
  ConstantLR(Optimizer& optimizer, double factor = 1.0 / 3.0, std::int64_t total_iters = 5);
  std::string name() const override { return "ConstantLR"; }
  double lr_at(std::size_t group, std::int64_t epoch) const override;

 private:
  double factor_;
  std::int64_t total_iters_;
};

// Runs schedulers[i] from milestones[i-1] on; each child counts its steps from 0 at its own
// milestone (PyTorch's SequentialLR), e.g. LinearLR warmup for 5 steps, then cosine:
//   SequentialLR(opt, {warmup, cosine}, {5}).
class SequentialLR : public LRScheduler {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<std::int64_t> milestones);
  std::string name() const override { return "SequentialLR"; }
  double lr_at(std::size_t group, std::int64_t epoch) const override;
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 protected:
  void apply() override;

 private:
  // The child active at `epoch` and the child's own step count there.
  std::pair<std::size_t, std::int64_t> locate(std::int64_t epoch) const;

  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<std::int64_t> milestones_;
};

enum class AnnealStrategy { Cos, Linear };

struct OneCycleOptions {
  double pct_start = 0.3;
  AnnealStrategy anneal_strategy = AnnealStrategy::Cos;
  double div_factor = 25.0;       // initial lr = max_lr / div_factor
  double final_div_factor = 1e4;  // min lr = initial lr / final_div_factor
  bool three_phase = false;
  bool cycle_momentum = true;  // as PyTorch: momentum (SGD) or beta1 (Adam) cycles inversely
  double base_momentum = 0.85;
  double max_momentum = 0.95;
};

// The 1cycle policy: lr rises from max_lr/div_factor to max_lr over pct_start of total_steps,
// then anneals to initial/final_div_factor (three_phase: back to initial first, then to min).
// Within a phase from step a to b: pct = (epoch - a)/(b - a) and
//   cos:    lr = end + (start - end) * (1 + cos(pi * pct)) / 2;   linear: start + pct * (end -
//   start)
// It overwrites each group's initial_lr with max_lr/div_factor, as PyTorch does. Stepping past
// total_steps is an error.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps,
             const OneCycleOptions& options = {});
  // One max_lr per group.
  OneCycleLR(Optimizer& optimizer, std::vector<double> max_lrs, std::int64_t total_steps,
             const OneCycleOptions& options = {});
  std::string name() const override { return "OneCycleLR"; }
  double lr_at(std::size_t group, std::int64_t epoch) const override;
  // The momentum (or beta1) of group `group` at step `epoch`.
  double momentum_at(std::size_t group, std::int64_t epoch) const;

 protected:
  void apply() override;

 private:
  // Values are picked per group: lr 0 initial, 1 max, 2 min; momentum 0 base, 1 max.
  struct Phase {
    double end_step;
    int start_lr, end_lr;
    int start_momentum, end_momentum;
  };
  // Finds the phase of `epoch` and the fraction of it that has elapsed.
  std::pair<const Phase*, double> phase_at(std::int64_t epoch) const;
  double anneal(double start, double end, double pct) const;

  std::int64_t total_steps_;
  OneCycleOptions options_;
  std::vector<double> initial_lrs_, max_lrs_, min_lrs_;
  std::vector<Phase> phases_;
};

enum class PlateauMode { Min, Max };
enum class ThresholdMode { Rel, Abs };

struct PlateauOptions {
  PlateauMode mode = PlateauMode::Min;
  double factor = 0.1;
  std::int64_t patience = 10;
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::Rel;
  std::int64_t cooldown = 0;
  double min_lr = 0.0;
  double eps = 1e-8;
};

// Multiplies every group's lr by `factor` (not below min_lr) once the metric has not improved
// for more than `patience` steps, then waits `cooldown` steps before counting again.
// Improvement (min mode): metric < best * (1 - threshold) (rel) or < best - threshold (abs);
// max mode: > best * (1 + threshold) or > best + threshold. Reductions smaller than eps are
// skipped. Not an LRScheduler: its step takes the metric.
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options = {});

  // Records one metric value (e.g. a validation loss) and reduces the lrs if it is time.
  void step(double metric);
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  std::int64_t last_epoch() const { return last_epoch_; }
  double best() const { return best_; }
  std::int64_t num_bad_epochs() const { return num_bad_epochs_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }

  // {"scheduler": "ReduceLROnPlateau", "last_epoch", "best", "num_bad_epochs",
  //  "cooldown_counter", "last_lr"}
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

 private:
  bool is_better(double a) const;

  Optimizer* optimizer_;
  PlateauOptions options_;
  double best_;
  std::int64_t num_bad_epochs_ = 0;
  std::int64_t cooldown_counter_ = 0;
  std::int64_t last_epoch_ = 0;
  std::vector<double> last_lr_;
};

}  // namespace pw::optim
