// Learning-rate schedulers (optim/scheduler.h): every scheduler's lr sequence over a few dozen
// steps against its closed form (as torch.optim.lr_scheduler documents it), ReduceLROnPlateau
// on scripted metrics worked through by hand, and state save/load in the middle of a sequence.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <memory>
#include <numbers>
#include <vector>

#include "optim/adam.h"
#include "optim/scheduler.h"
#include "optim/sgd.h"

using namespace pw;
using optim::LRScheduler;

namespace {

constexpr double kPi = std::numbers::pi;
constexpr std::int64_t kSteps = 40;

// SGD with momentum over two groups of base lr base0 and base1 (schedulers keep one lr per
// group, each computed from its own base).
std::unique_ptr<optim::SGD> make_sgd(double base0 = 0.1, double base1 = 0.02) {
  std::vector<optim::GroupSpec> groups{{{zeros({2}).requires_grad_()}, base0, std::nullopt},
                                       {{zeros({3}).requires_grad_()}, base1, std::nullopt}};
  return std::make_unique<optim::SGD>(groups, optim::SGDOptions{.lr = base0, .momentum = 0.9});
}

// lr of a group at step `epoch`, from the group's base lr.
using ClosedForm = std::function<double(double base, std::int64_t epoch)>;

// Checks the lrs of steps 0 (construction) to `steps`: what the scheduler reports, what it
// wrote into the optimizer's groups, and its lr_at.
void check_sequence(LRScheduler& s, const optim::Optimizer& opt, const ClosedForm& expected,
                    std::int64_t steps = kSteps) {
  const auto& groups = opt.param_groups();
  const std::vector<double> bases{groups[0].initial_lr, groups[1].initial_lr};
  for (std::int64_t e = 0; e <= steps; ++e) {
    if (e > 0) s.step();
    REQUIRE(s.last_epoch() == e);
    for (std::size_t g = 0; g < 2; ++g) {
      INFO(s.name() << ", step " << e << ", group " << g);
      CHECK(s.get_last_lr()[g] == Approx(expected(bases[g], e)).epsilon(1e-12).margin(1e-15));
      CHECK(groups[g].lr == s.get_last_lr()[g]);
      CHECK(s.lr_at(g, e) == s.get_last_lr()[g]);
    }
  }
}

}  // namespace

TEST_CASE("StepLR, MultiStepLR and ExponentialLR follow their closed forms", "[scheduler]") {
  {
    auto opt = make_sgd();
    optim::StepLR s(*opt, 7, 0.5);  // base * gamma^floor(epoch / step_size)
    check_sequence(s, *opt, [](double b, std::int64_t e) { return b * std::pow(0.5, e / 7); });
  }
  {
    auto opt = make_sgd();
    optim::MultiStepLR s(*opt, {25, 5, 12}, 0.3);  // milestones in any order
    check_sequence(s, *opt, [](double b, std::int64_t e) {
      const int passed = (e >= 5) + (e >= 12) + (e >= 25);
      return b * std::pow(0.3, passed);
    });
  }
  {
    auto opt = make_sgd();
    optim::ExponentialLR s(*opt, 0.9);
    check_sequence(s, *opt, [](double b, std::int64_t e) { return b * std::pow(0.9, e); });
  }
}

TEST_CASE("CosineAnnealingLR follows eta_min + (base - eta_min)(1 + cos(pi t / T_max)) / 2",
          "[scheduler]") {
  // 40 steps with T_max 15: past T_max the curve rises again, as PyTorch's does.
  auto opt = make_sgd();
  optim::CosineAnnealingLR s(*opt, 15, 1e-3);
  check_sequence(s, *opt, [](double b, std::int64_t e) {
    return 1e-3 + (b - 1e-3) * (1.0 + std::cos(kPi * static_cast<double>(e) / 15.0)) / 2.0;
  });
  CHECK(s.get_last_lr()[0] == Approx(1e-3 + (0.1 - 1e-3) * (1.0 + std::cos(kPi * 40 / 15)) / 2));
}

TEST_CASE("LinearLR and ConstantLR follow their closed forms", "[scheduler]") {
  {
    auto opt = make_sgd();  // warmup: a quarter of the lr at step 0, all of it from step 8
    optim::LinearLR s(*opt, 0.25, 1.0, 8);
    check_sequence(s, *opt, [](double b, std::int64_t e) {
      return b * (0.25 + 0.75 * static_cast<double>(std::min<std::int64_t>(e, 8)) / 8.0);
    });
  }
  {
    auto opt = make_sgd();  // decay: from the whole lr to a tenth over 10 steps
    optim::LinearLR s(*opt, 1.0, 0.1, 10);
    check_sequence(s, *opt, [](double b, std::int64_t e) {
      return b * (1.0 - 0.9 * static_cast<double>(std::min<std::int64_t>(e, 10)) / 10.0);
    });
  }
  {
    auto opt = make_sgd();
    optim::ConstantLR s(*opt, 0.5, 6);
    check_sequence(s, *opt, [](double b, std::int64_t e) { return e < 6 ? 0.5 * b : b; });
  }
}

TEST_CASE("SequentialLR runs each child from its own step 0 at its milestone", "[scheduler]") {
  {
    // The usual warmup then cosine: LinearLR for 5 steps, then CosineAnnealingLR(T_max 30).
    auto opt = make_sgd();
    auto warmup = std::make_shared<optim::LinearLR>(*opt, 0.1, 1.0, 5);
    auto cosine = std::make_shared<optim::CosineAnnealingLR>(*opt, 30, 0.0);
    optim::SequentialLR s(*opt, {warmup, cosine}, {5});
    check_sequence(s, *opt, [](double b, std::int64_t e) {
      if (e < 5) return b * (0.1 + 0.9 * static_cast<double>(e) / 5.0);
      return b * (1.0 + std::cos(kPi * static_cast<double>(e - 5) / 30.0)) / 2.0;
    });
  }
  {
    // Three children: half the lr for 3 steps, exponential decay until step 10, then steps.
    auto opt = make_sgd();
    auto constant = std::make_shared<optim::ConstantLR>(*opt, 0.5, 100);
    auto exponential = std::make_shared<optim::ExponentialLR>(*opt, 0.8);
    auto step = std::make_shared<optim::StepLR>(*opt, 4, 0.5);
    optim::SequentialLR s(*opt, {constant, exponential, step}, {3, 10});
    check_sequence(s, *opt, [](double b, std::int64_t e) {
      if (e < 3) return 0.5 * b;
      if (e < 10) return b * std::pow(0.8, e - 3);
      return b * std::pow(0.5, (e - 10) / 4);
    });
  }
}

namespace {

// OneCycleLR's schedule as PyTorch documents it, for total_steps 30 and pct_start 0.25: phase
// boundaries at step pct_start * 30 - 1 = 6.5 and 29 (three phases: 6.5, 2 * 7.5 - 2 = 13,
// 29); lr from max/25 up to max, then down to max/25/1e4 (three phases: back to max/25 first);
// momentum from 0.95 down to 0.85 and back (three phases: then stays at 0.95).
struct OneCycleExpected {
  bool cos, three_phase;
  double anneal(double start, double end, double pct) const {
    return cos ? end + (start - end) / 2.0 * (1.0 + std::cos(kPi * pct))
               : start + pct * (end - start);
  }
  // {lr, momentum} at step e for a group with peak max_lr.
  std::pair<double, double> at(double max_lr, std::int64_t e) const {
    const double initial = max_lr / 25.0, min = initial / 1e4, t = static_cast<double>(e);
    if (!three_phase) {
      if (t <= 6.5) return {anneal(initial, max_lr, t / 6.5), anneal(0.95, 0.85, t / 6.5)};
      const double pct = (t - 6.5) / (29.0 - 6.5);
      return {anneal(max_lr, min, pct), anneal(0.85, 0.95, pct)};
    }
    if (t <= 6.5) return {anneal(initial, max_lr, t / 6.5), anneal(0.95, 0.85, t / 6.5)};
    if (t <= 13.0) {
      const double pct = (t - 6.5) / (13.0 - 6.5);
      return {anneal(max_lr, initial, pct), anneal(0.85, 0.95, pct)};
    }
    return {anneal(initial, min, (t - 13.0) / (29.0 - 13.0)), 0.95};
  }
};

}  // namespace

TEST_CASE("OneCycleLR: lr and momentum over two and three phases, cos and linear", "[scheduler]") {
  for (const bool three_phase : {false, true}) {
    for (const bool cos : {true, false}) {
      INFO((three_phase ? "three phases, " : "two phases, ") << (cos ? "cos" : "linear"));
      const OneCycleExpected expected{cos, three_phase};
      auto opt = make_sgd();
      const optim::OneCycleOptions options{
          .pct_start = 0.25,
          .anneal_strategy = cos ? optim::AnnealStrategy::Cos : optim::AnnealStrategy::Linear,
          .three_phase = three_phase};
      optim::OneCycleLR s(*opt, std::vector<double>{1.0, 0.2}, 30, options);
      const std::vector<double> peaks{1.0, 0.2};
      // As PyTorch: initial_lr becomes max_lr / div_factor.
      CHECK(opt->param_groups()[0].initial_lr == Approx(1.0 / 25.0));
      CHECK(opt->param_groups()[1].initial_lr == Approx(0.2 / 25.0));
      // Steps 0 to total_steps (PyTorch allows stepping to total_steps, not past it).
      for (std::int64_t e = 0; e <= 30; ++e) {
        if (e > 0) s.step();
        for (std::size_t g = 0; g < 2; ++g) {
          INFO("step " << e << ", group " << g);
          const auto [lr, momentum] = expected.at(peaks[g], e);
          CHECK(s.get_last_lr()[g] == Approx(lr).epsilon(1e-12).margin(1e-15));
          CHECK(opt->param_groups()[g].lr == s.get_last_lr()[g]);
          CHECK(opt->param_groups()[g].momentum == Approx(momentum).epsilon(1e-12));
        }
      }
      CHECK_THROWS_WITH(s.step(), "[OneCycleLR] tried to step 31 times; total_steps is 30");
    }
  }
}

TEST_CASE(
    "OneCycleLR cycles AdamW's beta1 as its momentum, and leaves it with "
    "cycle_momentum=false",
    "[scheduler]") {
  Tensor p = zeros({2}).requires_grad_();
  optim::AdamW adamw({p}, {.lr = 0.1, .beta1 = 0.9});
  optim::OneCycleLR s(adamw, 1.0, 30, {.pct_start = 0.25});
  const OneCycleExpected expected{true, false};
  for (std::int64_t e = 0; e <= 12; ++e) {
    if (e > 0) s.step();
    CHECK(adamw.param_groups()[0].beta1 == Approx(expected.at(1.0, e).second).epsilon(1e-12));
  }
  Tensor q = zeros({2}).requires_grad_();
  optim::AdamW fixed({q}, {.lr = 0.1, .beta1 = 0.9});
  optim::OneCycleLR no_cycle(fixed, 1.0, 30, {.pct_start = 0.25, .cycle_momentum = false});
  for (int e = 0; e < 12; ++e) no_cycle.step();
  CHECK(fixed.param_groups()[0].beta1 == 0.9);
}

// ---- ReduceLROnPlateau ----

namespace {

// After each scripted metric: both groups' lrs, the bad-step count and whether a cooldown runs.
struct PlateauRow {
  double lr0, lr1;
  std::int64_t num_bad_epochs;
  bool in_cooldown;
};

// Groups at 1.0 and 0.3, factor 0.5, min_lr 0.2, patience 1 (a reduction on the second bad
// step in a row), cooldown 2, threshold 0.1. The metrics are scripted so that relative and
// absolute thresholds disagree: at a metric near 10, a relative threshold of 0.1 asks for an
// improvement of about 1.0, an absolute one for 0.1.
const optim::PlateauOptions kPlateau{
    .factor = 0.5, .patience = 1, .threshold = 0.1, .cooldown = 2, .min_lr = 0.2};
// Min mode: a loss. Max mode: an accuracy that improves and stalls at the same steps.
const std::vector<double> kMinMetrics{10.0, 9.5, 9.2, 9.2, 9.2, 9.2, 8.9, 8.5, 8.5,
                                      8.0,  9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0};
const std::vector<double> kMaxMetrics{10.0, 10.5, 10.8, 10.8, 10.8, 10.8, 11.1, 11.5, 11.5,
                                      12.3, 9.0,  9.0,  9.0,  9.0,  9.0,  9.0,  9.0};

// Relative threshold (min: better means below best * 0.9; max: above best * 1.1).
const std::vector<PlateauRow> kRelRows{
    {1.0, 0.3, 0, false},   //  1: the first metric is the best so far
    {1.0, 0.3, 1, false},   //  2: 9.5 is not below 9.0 (10.5 not above 11.0): bad
    {0.5, 0.2, 0, true},    //  3: second bad step > patience: halve (group 1 stops at
                            //     min_lr 0.2), cooldown of 2 starts
    {0.5, 0.2, 0, true},    //  4: bad, but the cooldown does not count it
    {0.5, 0.2, 0, false},   //  5: the cooldown's last step
    {0.5, 0.2, 1, false},   //  6: bad
    {0.5, 0.2, 0, false},   //  7: 8.9 < 9.0 (11.1 > 11.0): new best
    {0.5, 0.2, 1, false},   //  8: 8.5 is not below 8.01 (11.5 not above 12.21)
    {0.25, 0.2, 0, true},   //  9: bad again: halve
    {0.25, 0.2, 0, true},   // 10: 8.0 < 8.01 (12.3 > 12.21): new best, within the cooldown
    {0.25, 0.2, 0, false},  // 11: bad, last cooldown step
    {0.25, 0.2, 1, false},  // 12: bad
    {0.2, 0.2, 0, true},    // 13: halve, but not below min_lr
    {0.2, 0.2, 0, true},    // 14
    {0.2, 0.2, 0, false},   // 15
    {0.2, 0.2, 1, false},   // 16
    {0.2, 0.2, 0, true}};   // 17: a reduction at min_lr changes nothing, the cooldown starts
// Absolute threshold (min: better means below best - 0.1; max: above best + 0.1).
const std::vector<PlateauRow> kAbsRows{
    {1.0, 0.3, 0, false},   //  1: first
    {1.0, 0.3, 0, false},   //  2: 9.5 < 9.9 (10.5 > 10.1): best
    {1.0, 0.3, 0, false},   //  3: 9.2 < 9.4 (10.8 > 10.6): best
    {1.0, 0.3, 1, false},   //  4: bad
    {0.5, 0.2, 0, true},    //  5: bad twice: halve, cooldown
    {0.5, 0.2, 0, true},    //  6: cooldown
    {0.5, 0.2, 0, false},   //  7: 8.9 < 9.1 (11.1 > 10.9): best; the cooldown ends
    {0.5, 0.2, 0, false},   //  8: 8.5 < 8.8 (11.5 > 11.2): best
    {0.5, 0.2, 1, false},   //  9: bad
    {0.5, 0.2, 0, false},   // 10: 8.0 < 8.4 (12.3 > 11.6): best
    {0.5, 0.2, 1, false},   // 11: bad
    {0.25, 0.2, 0, true},   // 12: halve
    {0.25, 0.2, 0, true},   // 13
    {0.25, 0.2, 0, false},  // 14
    {0.25, 0.2, 1, false},  // 15
    {0.2, 0.2, 0, true},    // 16: halve to min_lr
    {0.2, 0.2, 0, true}};   // 17

void check_plateau(optim::ReduceLROnPlateau& s, const optim::Optimizer& opt,
                   const std::vector<double>& metrics, const std::vector<PlateauRow>& rows,
                   std::size_t from = 0) {
  REQUIRE(metrics.size() == rows.size());
  for (std::size_t i = from; i < metrics.size(); ++i) {
    INFO("metric " << i + 1 << ": " << metrics[i]);
    s.step(metrics[i]);
    CHECK(s.last_epoch() == static_cast<std::int64_t>(i + 1));
    CHECK(s.get_last_lr()[0] == Approx(rows[i].lr0).epsilon(1e-12));
    CHECK(s.get_last_lr()[1] == Approx(rows[i].lr1).epsilon(1e-12));
    CHECK(opt.param_groups()[0].lr == s.get_last_lr()[0]);
    CHECK(opt.param_groups()[1].lr == s.get_last_lr()[1]);
    CHECK(s.num_bad_epochs() == rows[i].num_bad_epochs);
    CHECK(s.in_cooldown() == rows[i].in_cooldown);
  }
}

}  // namespace

TEST_CASE("ReduceLROnPlateau in min and max mode with relative and absolute thresholds",
          "[scheduler]") {
  struct Case {
    optim::PlateauMode mode;
    optim::ThresholdMode threshold_mode;
    const std::vector<double>& metrics;
    const std::vector<PlateauRow>& rows;
    double best;
  };
  using optim::PlateauMode, optim::ThresholdMode;
  const std::vector<Case> cases{
      {PlateauMode::Min, ThresholdMode::Rel, kMinMetrics, kRelRows, 8.0},
      {PlateauMode::Min, ThresholdMode::Abs, kMinMetrics, kAbsRows, 8.0},
      {PlateauMode::Max, ThresholdMode::Rel, kMaxMetrics, kRelRows, 12.3},
      {PlateauMode::Max, ThresholdMode::Abs, kMaxMetrics, kAbsRows, 12.3}};
  for (const Case& c : cases) {
    INFO((c.mode == PlateauMode::Min ? "min" : "max")
         << ", " << (c.threshold_mode == ThresholdMode::Rel ? "rel" : "abs"));
    auto opt = make_sgd(1.0, 0.3);
    optim::PlateauOptions o = kPlateau;
    o.mode = c.mode;
    o.threshold_mode = c.threshold_mode;
    optim::ReduceLROnPlateau s(*opt, o);
    CHECK(s.get_last_lr() == std::vector<double>{1.0, 0.3});  // construction changes nothing
    check_plateau(s, *opt, c.metrics, c.rows);
    CHECK(s.best() == c.best);
  }
}

TEST_CASE("ReduceLROnPlateau rejects a factor of 1 or more and negative patience", "[scheduler]") {
  auto opt = make_sgd();
  CHECK_THROWS_WITH(optim::ReduceLROnPlateau(*opt, {.factor = 1.0}),
                    "[ReduceLROnPlateau] factor must be below 1, got 1");
  CHECK_THROWS_WITH(optim::ReduceLROnPlateau(*opt, {.patience = -1}),
                    Catch::Contains("patience and cooldown must be >= 0"));
}

// ---- state save/load mid-sequence ----

namespace {

using MakeScheduler = std::function<std::unique_ptr<LRScheduler>(optim::Optimizer&)>;

// Runs `total` steps without a break, and again stopping after `stop` steps: the optimizer's
// and the scheduler's states (the scheduler's through JSON text, as a checkpoint keeps it) go
// into a freshly built optimizer and scheduler, which must continue with the same lrs and
// momenta, bit for bit.
void check_resume(const MakeScheduler& make, std::int64_t stop, std::int64_t total = 30) {
  auto opt_a = make_sgd();
  auto a = make(*opt_a);
  std::vector<std::vector<double>> lrs, momenta;
  for (std::int64_t e = 1; e <= total; ++e) {
    a->step();
    lrs.push_back(a->get_last_lr());
    momenta.push_back({opt_a->param_groups()[0].momentum, opt_a->param_groups()[1].momentum});
  }

  auto opt_b = make_sgd();
  auto b = make(*opt_b);
  for (std::int64_t e = 1; e <= stop; ++e) b->step();
  const optim::OptimizerState opt_state = opt_b->state_dict();
  const std::string sched_state = b->state_dict().dump();

  auto opt_c = make_sgd();
  auto c = make(*opt_c);  // at its step 0
  opt_c->load_state_dict(opt_state);
  c->load_state_dict(nlohmann::json::parse(sched_state));
  INFO(c->name() << ", resumed after step " << stop);
  CHECK(c->last_epoch() == stop);
  for (std::int64_t e = stop + 1; e <= total; ++e) {
    c->step();
    INFO("step " << e);
    const auto i = static_cast<std::size_t>(e - 1);
    CHECK(c->get_last_lr() == lrs[i]);
    CHECK(opt_c->param_groups()[0].lr == lrs[i][0]);
    CHECK(opt_c->param_groups()[1].lr == lrs[i][1]);
    CHECK(opt_c->param_groups()[0].momentum == momenta[i][0]);
  }
}

}  // namespace

TEST_CASE("every scheduler continues identically after its state is saved and loaded",
          "[scheduler]") {
  using std::make_unique;
  const std::vector<MakeScheduler> makers{
      [](optim::Optimizer& o) { return make_unique<optim::StepLR>(o, 7, 0.5); },
      [](optim::Optimizer& o) {
        return make_unique<optim::MultiStepLR>(o, std::vector<std::int64_t>{5, 12, 25}, 0.3);
      },
      [](optim::Optimizer& o) { return make_unique<optim::ExponentialLR>(o, 0.9); },
      [](optim::Optimizer& o) { return make_unique<optim::CosineAnnealingLR>(o, 15, 1e-3); },
      [](optim::Optimizer& o) { return make_unique<optim::LinearLR>(o, 0.25, 1.0, 8); },
      [](optim::Optimizer& o) { return make_unique<optim::ConstantLR>(o, 0.5, 6); },
      [](optim::Optimizer& o) {
        auto warmup = std::make_shared<optim::LinearLR>(o, 0.1, 1.0, 5);
        auto cosine = std::make_shared<optim::CosineAnnealingLR>(o, 30, 0.0);
        return make_unique<optim::SequentialLR>(
            o, std::vector<std::shared_ptr<LRScheduler>>{warmup, cosine},
            std::vector<std::int64_t>{5});
      },
      [](optim::Optimizer& o) {
        return make_unique<optim::OneCycleLR>(o, std::vector<double>{1.0, 0.2}, 30,
                                              optim::OneCycleOptions{.three_phase = true});
      },
  };
  // Stops before, at and after the milestones and phase boundaries of the schedules above.
  for (const MakeScheduler& make : makers)
    for (std::int64_t stop : {0, 3, 5, 11, 29}) check_resume(make, stop);
}

TEST_CASE("ReduceLROnPlateau continues identically after its state is saved and loaded",
          "[scheduler]") {
  // Stops before the first metric (best is still infinite), inside a cooldown (after 4), with
  // a bad step counted (after 8) and just after a reduction (after 9).
  for (std::size_t stop : {0, 4, 8, 9}) {
    INFO("resumed after metric " << stop);
    auto opt_b = make_sgd(1.0, 0.3);
    optim::ReduceLROnPlateau b(*opt_b, kPlateau);
    for (std::size_t i = 0; i < stop; ++i) b.step(kMinMetrics[i]);
    const optim::OptimizerState opt_state = opt_b->state_dict();
    const std::string state = b.state_dict().dump();

    auto opt_c = make_sgd(1.0, 0.3);
    optim::ReduceLROnPlateau c(*opt_c, kPlateau);
    opt_c->load_state_dict(opt_state);
    c.load_state_dict(nlohmann::json::parse(state));
    check_plateau(c, *opt_c, kMinMetrics, kRelRows, stop);
  }
}
