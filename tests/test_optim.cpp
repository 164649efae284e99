// Optimizers (optim/sgd.h, optim/adam.h) against their published update rules, and gradient
// clipping (optim/clip_grad.h) on gradients made by hand.
//
// The references below are PyTorch 1.13's algorithms (the documentation of torch.optim.SGD,
// Adam and AdamW, and their single-tensor implementations, which Debian's python3-torch runs),
// written per element in double from the formulas, not from optim/*.cpp. Where the
// documentation's pseudo-code and PyTorch's code differ, the code is followed: with maximize,
// the gradient is negated before weight decay is added (so that decay still shrinks the
// weights), where the pseudo-code flips the sign of the whole final update.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "core/autograd.h"
#include "ops/shape.h"
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "optim/sgd.h"
#include "scoped_threads.h"

using namespace pw;
using Catch::Matchers::Contains;

namespace {

using Vec = std::vector<double>;

// The fixed problem: f(p) = sum_i a_i / 2 * (p_i - c_i)^2, whose gradient a_i * (p_i - c_i) is
// taken at the current parameter before every step. Coordinate 2 starts 0.08 above its
// minimum, so that an Adam step of about lr = 0.1 overshoots and its gradient shrinks to a
// quarter: the second moment then falls, which AMSGrad exists for.
const Vec kStart{1.0, -2.0, 0.6, 3.0};
const Vec kCenter{0.5, 0.0, 0.52, -1.0};
const Vec kCurvature{1.0, 0.5, 1.0, 4.0};

Vec gradient_at(const Vec& p) {
  Vec g(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) g[i] = kCurvature[i] * (p[i] - kCenter[i]);
  return g;
}

// torch.optim.SGD, with g the gradient, lambda weight decay, mu momentum, tau dampening:
//   d = (maximize ? -g : g) + lambda * p
//   b = d at t = 1, else mu * b + (1 - tau) * d                 (mu != 0)
//   d = d + mu * b (Nesterov), else b                           (mu != 0)
//   p = p - lr * d
struct SgdReference {
  optim::SGDOptions o;
  Vec b;
  void step(Vec& p, const Vec& g, int t) {
    b.resize(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d = (o.maximize ? -g[i] : g[i]) + o.weight_decay * p[i];
      if (o.momentum != 0.0) {
        b[i] = t == 1 ? d : o.momentum * b[i] + (1.0 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * b[i] : b[i];
      }
      p[i] -= o.lr * d;
    }
  }
};

// torch.optim.Adam (L2: lambda * p added to the gradient) and AdamW (decoupled: p shrunk by
// 1 - lr * lambda first), in the documentation's form with bias-corrected moments:
//   m = beta1 * m + (1 - beta1) * g,   v = beta2 * v + (1 - beta2) * g^2
//   m_hat = m / (1 - beta1^t)
//   v_hat = v / (1 - beta2^t), or with AMSGrad vmax = max(vmax, v), v_hat = vmax / (1 - beta2^t)
//   p = p - lr * m_hat / (sqrt(v_hat) + eps)
struct AdamReference {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled;
  Vec m, v, vmax;
  void step(Vec& p, const Vec& grad, int t) {
    m.resize(p.size());
    v.resize(p.size());
    vmax.resize(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      double g = maximize ? -grad[i] : grad[i];
      if (decoupled) {
        p[i] *= 1.0 - lr * weight_decay;
      } else {
        g += weight_decay * p[i];
      }
      m[i] = beta1 * m[i] + (1.0 - beta1) * g;
      v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
      vmax[i] = std::max(vmax[i], v[i]);
      const double m_hat = m[i] / (1.0 - std::pow(beta1, t));
      const double v_hat = (amsgrad ? vmax[i] : v[i]) / (1.0 - std::pow(beta2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

AdamReference adam_reference(const optim::AdamOptions& o, bool decoupled) {
  return {.lr = o.lr,
          .beta1 = o.beta1,
          .beta2 = o.beta2,
          .eps = o.eps,
          .weight_decay = o.weight_decay,
          .amsgrad = o.amsgrad,
          .maximize = o.maximize,
          .decoupled = decoupled,
          .m = {},
          .v = {},
          .vmax = {}};
}

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(const Tensor&)>;

// Three steps of the optimizer on a parameter of dtype `dt`, each after setting the problem's
// gradient at the parameter's current value, beside three steps of the reference in double;
// checks every coordinate after every step within tol * max(1, |p|) and returns the final
// parameter.
template <typename Reference>
Vec check_three_steps(const MakeOptimizer& make, Reference ref, DType dt, double tol) {
  Tensor p = copy_contiguous(from_vector(kStart, {4}), dt).requires_grad_();
  std::unique_ptr<optim::Optimizer> opt = make(p);
  Vec q = kStart;
  for (int t = 1; t <= 3; ++t) {
    p.set_grad(copy_contiguous(from_vector(gradient_at(p.to_vector<double>()), {4}), dt));
    opt->step();
    ref.step(q, gradient_at(q), t);
    const Vec got = p.to_vector<double>();
    for (std::size_t i = 0; i < q.size(); ++i) {
      INFO("step " << t << ", coordinate " << i << ", " << dtype_name(dt));
      CHECK(std::abs(got[i] - q[i]) <= tol * std::max(1.0, std::abs(q[i])));
    }
  }
  return p.to_vector<double>();
}

double max_diff(const Vec& a, const Vec& b) {
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// float64 runs agree with the reference to rounding; float32 ones to float32 rounding of
// parameters of order one over three steps.
constexpr double kTol64 = 1e-12;
constexpr double kTol32 = 2e-6;

}  // namespace

TEST_CASE("SGD: three steps against torch.optim.SGD's rule", "[optim]") {
  struct Case {
    const char* name;
    optim::SGDOptions options;
    int base;  // the case this one adds a feature to (its trajectory must differ), or -1
  };
  const std::vector<Case> cases{
      {"plain", {.lr = 0.1}, -1},
      {"momentum", {.lr = 0.1, .momentum = 0.9}, 0},
      {"dampening", {.lr = 0.1, .momentum = 0.9, .dampening = 0.5}, 1},
      {"Nesterov", {.lr = 0.1, .momentum = 0.9, .nesterov = true}, 1},
      {"weight decay", {.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .weight_decay = 0.2}, 2},
      {"weight decay without momentum", {.lr = 0.1, .weight_decay = 0.2}, 0},
      {"maximize",
       {.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .weight_decay = 0.2, .maximize = true},
       4},
      {"Nesterov, weight decay, maximize",
       {.lr = 0.05, .momentum = 0.8, .weight_decay = 0.1, .nesterov = true, .maximize = true},
       -1},
  };
  std::vector<Vec> results;
  for (const Case& c : cases) {
    INFO("SGD " << c.name);
    const MakeOptimizer make = [&](const Tensor& p) {
      return std::make_unique<optim::SGD>(std::vector<Tensor>{p}, c.options);
    };
    results.push_back(check_three_steps(make, SgdReference{c.options, {}}, DType::Float64, kTol64));
    check_three_steps(make, SgdReference{c.options, {}}, DType::Float32, kTol32);
    // Each feature changes the trajectory, so the comparison above exercised it.
    if (c.base >= 0) CHECK(max_diff(results.back(), results[c.base]) > 1e-3);
  }
}

TEST_CASE("Adam and AdamW: three steps against torch.optim.Adam's and AdamW's rules", "[optim]") {
  struct Case {
    const char* name;
    optim::AdamOptions options;
    bool decoupled;  // AdamW
    int base;
  };
  const std::vector<Case> cases{
      {"Adam", {.lr = 0.1}, false, -1},
      {"Adam, L2 weight decay", {.lr = 0.1, .weight_decay = 0.5}, false, 0},
      {"Adam, beta2 0.5", {.lr = 0.1, .beta2 = 0.5}, false, 0},
      {"Adam, AMSGrad", {.lr = 0.1, .beta2 = 0.5, .amsgrad = true}, false, 2},
      {"Adam, maximize", {.lr = 0.1, .weight_decay = 0.3, .maximize = true}, false, -1},
      {"AdamW", {.lr = 0.1, .weight_decay = 0.5}, true, 1},
      {"AdamW, AMSGrad", {.lr = 0.1, .beta2 = 0.5, .weight_decay = 0.5, .amsgrad = true}, true, -1},
      {"AdamW, maximize, large eps",
       {.lr = 0.05, .beta1 = 0.8, .eps = 0.01, .weight_decay = 0.1, .maximize = true},
       true,
       -1},
  };
  std::vector<Vec> results;
  for (const Case& c : cases) {
    INFO(c.name);
    const MakeOptimizer make = [&](const Tensor& p) -> std::unique_ptr<optim::Optimizer> {
      if (!c.decoupled) return std::make_unique<optim::Adam>(std::vector<Tensor>{p}, c.options);
      const optim::AdamOptions& o = c.options;
      return std::make_unique<optim::AdamW>(std::vector<Tensor>{p},
                                            optim::AdamWOptions{.lr = o.lr,
                                                                .beta1 = o.beta1,
                                                                .beta2 = o.beta2,
                                                                .eps = o.eps,
                                                                .weight_decay = o.weight_decay,
                                                                .amsgrad = o.amsgrad,
                                                                .maximize = o.maximize});
    };
    const AdamReference ref = adam_reference(c.options, c.decoupled);
    results.push_back(check_three_steps(make, ref, DType::Float64, kTol64));
    check_three_steps(make, ref, DType::Float32, kTol32);
    if (c.base >= 0) CHECK(max_diff(results.back(), results[c.base]) > 1e-3);
  }
}

TEST_CASE("optimizers skip parameters without a gradient and read strided gradients", "[optim]") {
  Tensor a = from_vector(Vec{1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {2, 3}).requires_grad_();
  Tensor b = from_vector(Vec{7.0}, {1}).requires_grad_();
  optim::SGD sgd({a, b}, {.lr = 0.5});
  // A (2, 3) gradient read through a transposed view of (3, 2) memory.
  Tensor g = from_vector(Vec{1.0, 4.0, 2.0, 5.0, 3.0, 6.0}, {3, 2});
  a.set_grad(transpose(g, 0, 1));
  sgd.step();
  CHECK(a.to_vector<double>() == Vec{0.5, 1.0, 1.5, 2.0, 2.5, 3.0});  // p - 0.5 * p here
  CHECK(b.to_vector<double>() == Vec{7.0});
  CHECK(sgd.state_dict().scalars.at("state").size() == 1);  // no state for b

  optim::AdamW adamw({b}, {});
  adamw.step();  // no gradient: nothing happens, not even the step count
  CHECK(b.to_vector<double>() == Vec{7.0});
  CHECK(adamw.state_dict().scalars.at("state").empty());
}

TEST_CASE("an optimizer's state loads back, and a malformed one is refused whole", "[optim]") {
  Tensor a = from_vector(Vec{1.0, 2.0}, {2}).requires_grad_();
  optim::AdamW adamw({a}, {.lr = 0.1});
  a.set_grad(from_vector(Vec{0.5, -0.5}, {2}));
  adamw.step();
  const optim::OptimizerState saved = adamw.state_dict();
  REQUIRE(saved.tensors.size() == 2);  // state.0.exp_avg, state.0.exp_avg_sq

  Tensor b = from_vector(Vec{1.0, 2.0}, {2}).requires_grad_();
  optim::AdamW other({b}, {.lr = 0.1});
  other.load_state_dict(saved);
  CHECK(other.state_dict().scalars == saved.scalars);
  CHECK(other.state_dict().tensors[0].second.to_vector<double>() ==
        saved.tensors[0].second.to_vector<double>());

  // Indices that are not decimal numbers (a fuzzer's "state.x.exp_avg" once threw
  // std::invalid_argument from std::stoul), out of range, or a state key that is no index.
  for (const std::string name : {"state.x.exp_avg", "state..exp_avg", "state.-1.exp_avg",
                                 "state.99999999999999999999999.exp_avg", "state.1.exp_avg"}) {
    optim::OptimizerState bad = saved;
    bad.tensors[0].first = name;
    CHECK_THROWS_WITH(other.load_state_dict(bad), Contains("AdamW") && Contains(name));
  }
  optim::OptimizerState bad_key = saved;
  bad_key.scalars["state"] = {{"zero", {{"step", 1}}}};
  CHECK_THROWS_WITH(other.load_state_dict(bad_key), Contains("'zero'"));
  CHECK(other.state_dict().scalars == saved.scalars);  // unchanged by the failed loads
}

TEST_CASE("optimizers reject hyperparameters PyTorch rejects", "[optim]") {
  Tensor p = zeros({2}).requires_grad_();
  CHECK_THROWS_WITH(optim::SGD({p}, {.lr = 0.1, .dampening = 0.5, .nesterov = true}),
                    Catch::Contains("Nesterov momentum requires momentum > 0 and dampening 0"));
  CHECK_THROWS_WITH(optim::SGD({p}, {.lr = -1.0}), "[SGD] invalid learning rate -1");
  CHECK_THROWS_WITH(optim::Adam({p}, {.beta2 = 1.0}), "[Adam] invalid beta2 1");
  CHECK_THROWS_WITH(optim::AdamW({p}, {.weight_decay = -0.1}), "[AdamW] invalid weight_decay -0.1");
}

// ---- clip_grad_norm_ ----

namespace {

Tensor leaf_with_grad(const Vec& grad, DType dt = DType::Float32) {
  Tensor p = zeros({static_cast<std::int64_t>(grad.size())}, dt).requires_grad_();
  p.set_grad(copy_contiguous(from_vector(grad, {static_cast<std::int64_t>(grad.size())}), dt));
  return p;
}

}  // namespace

TEST_CASE("clip_grad_norm_ on hand-made gradients, for each norm type", "[optim]") {
  // Gradients {3, -4} and {12}: |g|_1 = 19, |g|_2 = 13, |g|_3 = 1819^(1/3), |g|_inf = 12.
  struct Case {
    double norm_type, total;
  };
  const std::vector<Case> cases{
      {1.0, 19.0}, {2.0, 13.0}, {3.0, std::cbrt(1819.0)}, {optim::kInfNorm, 12.0}};
  for (const Case& c : cases) {
    INFO("norm_type " << c.norm_type);
    Tensor a = leaf_with_grad({3.0, -4.0}), b = leaf_with_grad({12.0}, DType::Float64);
    CHECK(optim::grad_norm({a, b}, c.norm_type) == Approx(c.total).epsilon(1e-12));
    // Clipped to 6.5: every gradient scaled by 6.5 / (total + 1e-6), PyTorch's clip_coef.
    const double coef = 6.5 / (c.total + 1e-6);
    CHECK(optim::clip_grad_norm_({a, b}, 6.5, c.norm_type) == Approx(c.total).epsilon(1e-12));
    const auto ga = a.grad().to_vector<double>(), gb = b.grad().to_vector<double>();
    CHECK(ga[0] == Approx(3.0 * coef).epsilon(1e-6));  // float32
    CHECK(ga[1] == Approx(-4.0 * coef).epsilon(1e-6));
    CHECK(gb[0] == Approx(12.0 * coef).epsilon(1e-14));  // float64
    // The new norm is max_norm, up to the 1e-6 in the denominator.
    CHECK(optim::grad_norm({a, b}, c.norm_type) == Approx(6.5).epsilon(1e-6));

    // A max_norm at or above the total leaves the gradients alone.
    Tensor c2 = leaf_with_grad({3.0, -4.0}), d2 = leaf_with_grad({12.0});
    CHECK(optim::clip_grad_norm_({c2, d2}, c.total + 1.0, c.norm_type) ==
          Approx(c.total).epsilon(1e-6));
    CHECK(c2.grad().to_vector<double>() == Vec{3.0, -4.0});
    CHECK(d2.grad().to_vector<double>() == Vec{12.0});
  }
}

TEST_CASE("clip_grad_norm_ with zero, missing, strided and non-finite gradients", "[optim]") {
  SECTION("zero gradients: norm 0, nothing divided by zero") {
    Tensor a = leaf_with_grad({0.0, 0.0, 0.0});
    CHECK(optim::clip_grad_norm_({a}, 1.0) == 0.0);
    CHECK(a.grad().to_vector<double>() == Vec{0.0, 0.0, 0.0});
    CHECK(optim::clip_grad_norm_({a}, 1.0, optim::kInfNorm) == 0.0);
  }
  SECTION("parameters without a gradient count as nothing") {
    Tensor none = zeros({5}).requires_grad_();
    CHECK(optim::clip_grad_norm_({none}, 1.0) == 0.0);
    Tensor a = leaf_with_grad({6.0, 8.0});
    CHECK(optim::clip_grad_norm_({none, a}, 5.0) == Approx(10.0));
    CHECK(a.grad().to_vector<double>()[0] == Approx(3.0).epsilon(1e-6));
    CHECK(!none.grad().defined());
  }
  SECTION("a strided gradient is measured and scaled in place") {
    Tensor p = zeros({2, 2}).requires_grad_();
    Tensor g = from_vector(Vec{3.0, 0.0, 4.0, 0.0}, {2, 2});  // transposed: {{3, 4}, {0, 0}}
    p.set_grad(transpose(g, 0, 1));
    CHECK(optim::clip_grad_norm_({p}, 1.0) == Approx(5.0));
    const Vec got = p.grad().to_vector<double>();
    CHECK(got[0] == Approx(0.6).epsilon(1e-6));
    CHECK(got[1] == Approx(0.8).epsilon(1e-6));
    CHECK(got[2] == 0.0);
    CHECK(got[3] == 0.0);
  }
  SECTION("an inf or nan gradient: the total says so and the gradients are left as they are") {
    // PyTorch (error_if_nonfinite=False) would multiply by max_norm / inf = 0 or by nan;
    // clip_grad.h returns the total untouched so that the caller can skip the step.
    const double inf = std::numeric_limits<double>::infinity();
    for (double norm_type : {2.0, 1.0, optim::kInfNorm}) {
      INFO("norm_type " << norm_type);
      Tensor a = leaf_with_grad({1.0, inf}), b = leaf_with_grad({2.0});
      CHECK(std::isinf(optim::clip_grad_norm_({a, b}, 1.0, norm_type)));
      CHECK(a.grad().to_vector<double>()[0] == 1.0);
      CHECK(b.grad().to_vector<double>()[0] == 2.0);
      Tensor c = leaf_with_grad({1.0, std::nan("")}), d = leaf_with_grad({inf});
      CHECK(std::isnan(optim::clip_grad_norm_({c, d}, 1.0, norm_type)));  // nan wins over inf
      CHECK(c.grad().to_vector<double>()[0] == 1.0);
    }
  }
  SECTION("a norm type that is not positive is an error") {
    Tensor a = leaf_with_grad({1.0});
    CHECK_THROWS_WITH(optim::clip_grad_norm_({a}, 1.0, 0.0),
                      "[clip_grad_norm_] invalid norm_type 0");
    CHECK_THROWS_WITH(optim::grad_norm({a}, -2.0), "[clip_grad_norm_] invalid norm_type -2");
  }
}

TEST_CASE("clip_grad_norm_ over many chunks on two threads matches a plain double sum", "[optim]") {
  // 100003 elements: several of the 16384-element chunks, the last one partial.
  testing::ScopedThreads threads(2);
  const std::int64_t n = 100003;
  Vec g(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    g[static_cast<std::size_t>(i)] = std::sin(0.001 * static_cast<double>(i)) * (i % 7 - 3);
  Tensor p = leaf_with_grad(g, DType::Float64);
  for (double norm_type : {1.0, 2.0, 2.5, optim::kInfNorm}) {
    INFO("norm_type " << norm_type);
    double expected = 0.0;
    for (double x : g) {
      if (std::isinf(norm_type)) {
        expected = std::max(expected, std::abs(x));
      } else {
        expected += std::pow(std::abs(x), norm_type);
      }
    }
    if (!std::isinf(norm_type)) expected = std::pow(expected, 1.0 / norm_type);
    CHECK(optim::grad_norm({p}, norm_type) == Approx(expected).epsilon(1e-12));
  }
  const double total = optim::clip_grad_norm_({p}, 1.0);
  const Vec got = p.grad().to_vector<double>();
  for (std::size_t i = 0; i < got.size(); i += 9973)
    CHECK(got[i] == Approx(g[i] / (total + 1e-6)).epsilon(1e-12));
}
