#include "optim/scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/json.h"

namespace pw::optim {

// ---- LRScheduler ----

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(&optimizer) {
  for (const ParamGroup& g : optimizer.param_groups()) base_lrs_.push_back(g.initial_lr);
}

void LRScheduler::step() {
  set_epoch(last_epoch_ + 1);
}

void LRScheduler::set_epoch(std::int64_t epoch) {
  last_epoch_ = epoch;
  apply();
}

void LRScheduler::apply() {
  auto& groups = optimizer_->param_groups();
  last_lr_.resize(groups.size());
  for (std::size_t i = 0; i < groups.size(); ++i) {
    groups[i].lr = lr_at(i, last_epoch_);
    last_lr_[i] = groups[i].lr;
  }
}

nlohmann::json LRScheduler::state_dict() const {
  return {{"scheduler", name()},
          {"last_epoch", last_epoch_},
          {"base_lrs", base_lrs_},
          {"last_lr", last_lr_}};
}

void LRScheduler::load_state_dict(const nlohmann::json& state) {
  PW_CHECK(state.is_object() && state.contains("scheduler"),
           "[{}] load_state_dict: not a scheduler state", name());
  const std::string saved = state.at("scheduler").get<std::string>();
  PW_CHECK(saved == name(), "[{}] load_state_dict: the state was saved by {}", name(), saved);
  auto base = state.at("base_lrs").get<std::vector<double>>();
  PW_CHECK(base.size() == base_lrs_.size(),
           "[{}] load_state_dict: the state has {} groups, the optimizer {}", name(), base.size(),
           base_lrs_.size());
  base_lrs_ = std::move(base);
  last_epoch_ = json_int64(state.at("last_epoch"), fmt::format("[{}] last_epoch", name()));
  last_lr_ = state.at("last_lr").get<std::vector<double>>();
}

// ---- closed forms ----

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  PW_CHECK(step_size > 0, "[StepLR] step_size must be positive, got {}", step_size);
  initial_step();
}

double StepLR::lr_at(std::size_t group, std::int64_t epoch) const {
  return base_lrs_[group] * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma)
    : LRScheduler(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  std::sort(milestones_.begin(), milestones_.end());
  initial_step();
}

double MultiStepLR::lr_at(std::size_t group, std::int64_t epoch) const {
  const auto passed =
      std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin();
  return base_lrs_[group] * std::pow(gamma_, static_cast<double>(passed));
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler(optimizer), gamma_(gamma) {
  initial_step();
}

double ExponentialLR::lr_at(std::size_t group, std::int64_t epoch) const {
  return base_lrs_[group] * std::pow(gamma_, static_cast<double>(epoch));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  PW_CHECK(T_max > 0, "[CosineAnnealingLR] T_max must be positive, got {}", T_max);
  initial_step();
}

double CosineAnnealingLR::lr_at(std::size_t group, std::int64_t epoch) const {
  const double c =
      std::cos(std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(T_max_));
  return eta_min_ + (base_lrs_[group] - eta_min_) * (1.0 + c) / 2.0;
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor,
                   std::int64_t total_iters)
    : LRScheduler(optimizer),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
  PW_CHECK(start_factor > 0.0 && start_factor <= 1.0,
           "[LinearLR] start_factor must be in (0, 1], got {}", start_factor);
  PW_CHECK(end_factor >= 0.0 && end_factor <= 1.0,
           "[LinearLR] end_factor must be in [0, 1], got {}", end_factor);
  PW_CHECK(total_iters > 0, "[LinearLR] total_iters must be positive, got {}", total_iters);
  initial_step();
}

double LinearLR::lr_at(std::size_t group, std::int64_t epoch) const {
  const double t = static_cast<double>(std::min(epoch, total_iters_));
  return base_lrs_[group] *
         (start_factor_ + (end_factor_ - start_factor_) * t / static_cast<double>(total_iters_));
}

ConstantLR::ConstantLR(Optimizer& optimizer, double factor, std::int64_t total_iters)
    : LRScheduler(optimizer), factor_(factor), total_iters_(total_iters) {
  PW_CHECK(factor >= 0.0 && factor <= 1.0, "[ConstantLR] factor must be in [0, 1], got {}", factor);
  initial_step();
}

double ConstantLR::lr_at(std::size_t group, std::int64_t epoch) const {
  return base_lrs_[group] * (epoch >= total_iters_ ? 1.0 : factor_);
}

// ---- SequentialLR ----

SequentialLR::SequentialLR(Optimizer& optimizer,
                           std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<std::int64_t> milestones)
    : LRScheduler(optimizer),
      schedulers_(std::move(schedulers)),
      milestones_(std::move(milestones)) {
  PW_CHECK(!schedulers_.empty(), "[SequentialLR] needs at least one scheduler");
  PW_CHECK(milestones_.size() + 1 == schedulers_.size(),
           "[SequentialLR] {} schedulers need {} milestones, got {}", schedulers_.size(),
           schedulers_.size() - 1, milestones_.size());
  for (std::size_t i = 0; i < schedulers_.size(); ++i) {
    PW_CHECK(schedulers_[i] != nullptr, "[SequentialLR] scheduler {} is null", i);
    PW_CHECK(&schedulers_[i]->optimizer() == &optimizer,
             "[SequentialLR] scheduler {} ({}) drives a different optimizer", i,
             schedulers_[i]->name());
  }
  PW_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()),
           "[SequentialLR] milestones must be increasing, got {}", milestones_);
  // Constructing the children applied their step 0 in turn; restore the first one's.
  initial_step();
}

std::pair<std::size_t, std::int64_t> SequentialLR::locate(std::int64_t epoch) const {
  const auto idx = static_cast<std::size_t>(
      std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin());
  return {idx, idx == 0 ? epoch : epoch - milestones_[idx - 1]};
}

double SequentialLR::lr_at(std::size_t group, std::int64_t epoch) const {
  const auto [idx, local] = locate(epoch);
  return schedulers_[idx]->lr_at(group, local);
}

void SequentialLR::apply() {
  const auto [idx, local] = locate(last_epoch_);
  schedulers_[idx]->set_epoch(local);
  last_lr_ = schedulers_[idx]->get_last_lr();
}

nlohmann::json SequentialLR::state_dict() const {
  nlohmann::json s = LRScheduler::state_dict();
  s["schedulers"] = nlohmann::json::array();
  for (const auto& child : schedulers_) s["schedulers"].push_back(child->state_dict());
  return s;
}

void SequentialLR::load_state_dict(const nlohmann::json& state) {
  LRScheduler::load_state_dict(state);
  const auto& children = state.at("schedulers");
  PW_CHECK(children.size() == schedulers_.size(),
           "[SequentialLR] load_state_dict: the state has {} schedulers, this one {}",
           children.size(), schedulers_.size());
  for (std::size_t i = 0; i < schedulers_.size(); ++i) schedulers_[i]->load_state_dict(children[i]);
}

// ---- OneCycleLR ----

OneCycleLR::OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps,
                       const OneCycleOptions& options)
    : OneCycleLR(optimizer, std::vector<double>(optimizer.param_groups().size(), max_lr),
                 total_steps, options) {}

OneCycleLR::OneCycleLR(Optimizer& optimizer, std::vector<double> max_lrs, std::int64_t total_steps,
                       const OneCycleOptions& options)
    : LRScheduler(optimizer),
      total_steps_(total_steps),
      options_(options),
      max_lrs_(std::move(max_lrs)) {
  auto& groups = optimizer.param_groups();
  PW_CHECK(total_steps > 0, "[OneCycleLR] total_steps must be positive, got {}", total_steps);
  PW_CHECK(options.pct_start >= 0.0 && options.pct_start <= 1.0,
           "[OneCycleLR] pct_start must be in [0, 1], got {}", options.pct_start);
  PW_CHECK(max_lrs_.size() == groups.size(), "[OneCycleLR] {} max_lrs for {} parameter groups",
           max_lrs_.size(), groups.size());
  const double n = static_cast<double>(total_steps), p = options.pct_start;
  if (options.three_phase) {
    phases_ = {{p * n - 1.0, 0, 1, 1, 0}, {2.0 * p * n - 2.0, 1, 0, 0, 1}, {n - 1.0, 0, 2, 1, 1}};
  } else {
    phases_ = {{p * n - 1.0, 0, 1, 1, 0}, {n - 1.0, 1, 2, 0, 1}};
  }
  double prev = 0.0;
  for (const Phase& ph : phases_) {
    PW_CHECK(ph.end_step > prev,
             "[OneCycleLR] total_steps {} with pct_start {} leaves a phase without steps",
             total_steps, options.pct_start);
    prev = ph.end_step;
  }
  // As PyTorch: the schedule starts from max_lr / div_factor, which becomes initial_lr.
  for (std::size_t i = 0; i < groups.size(); ++i) {
    initial_lrs_.push_back(max_lrs_[i] / options.div_factor);
    min_lrs_.push_back(initial_lrs_[i] / options.final_div_factor);
    groups[i].initial_lr = initial_lrs_[i];
  }
  base_lrs_ = initial_lrs_;
  initial_step();
}

std::pair<const OneCycleLR::Phase*, double> OneCycleLR::phase_at(std::int64_t epoch) const {
  PW_CHECK(epoch <= total_steps_, "[OneCycleLR] tried to step {} times; total_steps is {}", epoch,
           total_steps_);
  const double e = static_cast<double>(epoch);
  double start = 0.0;
  for (std::size_t i = 0; i < phases_.size(); ++i) {
    const Phase& ph = phases_[i];
    if (e <= ph.end_step || i + 1 == phases_.size())
      return {&ph, (e - start) / (ph.end_step - start)};
    start = ph.end_step;
  }
  return {&phases_.back(), 1.0};  // not reached
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (options_.anneal_strategy == AnnealStrategy::Cos)
    return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0);
  return (end - start) * pct + start;
}

double OneCycleLR::lr_at(std::size_t group, std::int64_t epoch) const {
  const auto [ph, pct] = phase_at(epoch);
  const double values[3] = {initial_lrs_[group], max_lrs_[group], min_lrs_[group]};
  return anneal(values[ph->start_lr], values[ph->end_lr], pct);
}

double OneCycleLR::momentum_at(std::size_t, std::int64_t epoch) const {
  const auto [ph, pct] = phase_at(epoch);
  const double values[2] = {options_.base_momentum, options_.max_momentum};
  return anneal(values[ph->start_momentum], values[ph->end_momentum], pct);
}

void OneCycleLR::apply() {
  LRScheduler::apply();
  if (!options_.cycle_momentum) return;
  auto& groups = optimizer_->param_groups();
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const double m = momentum_at(i, last_epoch_);
    (optimizer_->uses_beta1() ? groups[i].beta1 : groups[i].momentum) = m;
  }
}

// ---- ReduceLROnPlateau ----

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options)
    : optimizer_(&optimizer), options_(options) {
  PW_CHECK(options.factor < 1.0, "[ReduceLROnPlateau] factor must be below 1, got {}",
           options.factor);
  PW_CHECK(options.patience >= 0 && options.cooldown >= 0,
           "[ReduceLROnPlateau] patience and cooldown must be >= 0, got {} and {}",
           options.patience, options.cooldown);
  best_ = options.mode == PlateauMode::Min ? INFINITY : -INFINITY;
  for (const ParamGroup& g : optimizer.param_groups()) last_lr_.push_back(g.lr);
}

bool ReduceLROnPlateau::is_better(double a) const {
  const double t = options_.threshold;
  const bool rel = options_.threshold_mode == ThresholdMode::Rel;
  if (options_.mode == PlateauMode::Min) return rel ? a < best_ * (1.0 - t) : a < best_ - t;
  return rel ? a > best_ * (1.0 + t) : a > best_ + t;
}

void ReduceLROnPlateau::step(double metric) {
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad steps during a cooldown do not count
  }
  auto& groups = optimizer_->param_groups();
  if (num_bad_epochs_ > options_.patience) {
    for (ParamGroup& g : groups) {
      const double new_lr = std::max(g.lr * options_.factor, options_.min_lr);
      if (g.lr - new_lr > options_.eps) g.lr = new_lr;
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
  last_lr_.resize(groups.size());
  for (std::size_t i = 0; i < groups.size(); ++i) last_lr_[i] = groups[i].lr;
}

nlohmann::json ReduceLROnPlateau::state_dict() const {
  // JSON has no infinity: before the first step, best is stored as null.
  nlohmann::json best = std::isfinite(best_) ? nlohmann::json(best_) : nlohmann::json(nullptr);
  return {{"scheduler", "ReduceLROnPlateau"},
          {"last_epoch", last_epoch_},
          {"best", best},
          {"num_bad_epochs", num_bad_epochs_},
          {"cooldown_counter", cooldown_counter_},
          {"last_lr", last_lr_}};
}

void ReduceLROnPlateau::load_state_dict(const nlohmann::json& state) {
  PW_CHECK(state.is_object() && state.value("scheduler", "") == "ReduceLROnPlateau",
           "[ReduceLROnPlateau] load_state_dict: not a ReduceLROnPlateau state");
  last_epoch_ = json_int64(state.at("last_epoch"), "[ReduceLROnPlateau] last_epoch");
  const auto& best = state.at("best");
  best_ = best.is_null() ? (options_.mode == PlateauMode::Min ? INFINITY : -INFINITY)
                         : best.get<double>();
  num_bad_epochs_ = json_int64(state.at("num_bad_epochs"), "[ReduceLROnPlateau] num_bad_epochs");
  cooldown_counter_ =
      json_int64(state.at("cooldown_counter"), "[ReduceLROnPlateau] cooldown_counter");
  last_lr_ = state.at("last_lr").get<std::vector<double>>();
}

}  // namespace pw::optim
