#include "optim/adam.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace pw::optim {

namespace {

ParamGroup adam_defaults(const AdamOptions& o) {
  ParamGroup g;
  g.lr = o.lr;
  g.beta1 = o.beta1;
  g.beta2 = o.beta2;
  g.eps = o.eps;
  g.weight_decay = o.weight_decay;
  g.amsgrad = o.amsgrad;
  g.maximize = o.maximize;
  return g;
}

// Scalars of one update, computed in double and rounded once to T.
template <typename T>
struct AdamScalars {
  T beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  T l2;            // weight decay added to the gradient (Adam), else 0
  T decay_factor;  // 1 - lr * weight_decay (AdamW), else 1
  T step_size;     // lr / (1 - beta1^t)
  T bc2_sqrt;      // sqrt(1 - beta2^t)
};

// The fused update over one contiguous parameter; `vmax` is null without AMSGrad.
template <typename T>
void adam_kernel(T* p, const T* g, T* m, T* v, T* vmax, std::int64_t n, const AdamScalars<T>& s,
                 bool maximize, bool decoupled) {
  parallel_for(n, kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      T d = maximize ? -g[i] : g[i];
      if (decoupled) {
        p[i] *= s.decay_factor;
      } else if (s.l2 != T(0)) {
        d += s.l2 * p[i];
      }
      m[i] = s.beta1 * m[i] + s.one_minus_beta1 * d;
      v[i] = s.beta2 * v[i] + s.one_minus_beta2 * d * d;
      T second = v[i];
      if (vmax != nullptr) second = vmax[i] = std::max(vmax[i], v[i]);
      const T denom = std::sqrt(second) / s.bc2_sqrt + s.eps;
      p[i] -= s.step_size * (m[i] / denom);
    }
  });
}

Tensor zero_buffer(ParamState& state, const std::string& name, const Tensor& like) {
  Tensor b = state.find(name);
  if (!b.defined()) {
    b = zeros_like(like);
    state.buffers[name] = b;
  }
  return b;
}

}  // namespace

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam(std::vector<GroupSpec>{GroupSpec{std::move(params), {}, {}}}, options, false) {}

Adam::Adam(const std::vector<GroupSpec>& groups, const AdamOptions& options)
    : Adam(groups, options, false) {}

Adam::Adam(const std::vector<GroupSpec>& groups, const AdamOptions& options, bool decoupled)
    : Optimizer(make_groups(groups, adam_defaults(options))), decoupled_(decoupled) {
  for (const ParamGroup& g : groups_) validate(g);
}

void Adam::validate(const ParamGroup& g) const {
  const std::string n = name();
  PW_CHECK(g.lr >= 0.0, "[{}] invalid learning rate {}", n, g.lr);
  PW_CHECK(g.eps >= 0.0, "[{}] invalid eps {}", n, g.eps);
  PW_CHECK(g.beta1 >= 0.0 && g.beta1 < 1.0, "[{}] invalid beta1 {}", n, g.beta1);
  PW_CHECK(g.beta2 >= 0.0 && g.beta2 < 1.0, "[{}] invalid beta2 {}", n, g.beta2);
  PW_CHECK(g.weight_decay >= 0.0, "[{}] invalid weight_decay {}", n, g.weight_decay);
}

void Adam::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                  ParamState& state) {
  const std::int64_t t = ++state.step;
  Tensor m = zero_buffer(state, "exp_avg", param);
  Tensor v = zero_buffer(state, "exp_avg_sq", param);
  Tensor vmax = group.amsgrad ? zero_buffer(state, "max_exp_avg_sq", param) : Tensor();
  const double bc1 = 1.0 - std::pow(group.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(group.beta2, static_cast<double>(t));
  PW_DISPATCH(param.dtype(), [&] {
    using T = scalar_t;
    AdamScalars<T> s;
    s.beta1 = static_cast<T>(group.beta1);
    s.beta2 = static_cast<T>(group.beta2);
    s.one_minus_beta1 = static_cast<T>(1.0 - group.beta1);
    s.one_minus_beta2 = static_cast<T>(1.0 - group.beta2);
    s.eps = static_cast<T>(group.eps);
    s.l2 = static_cast<T>(decoupled_ ? 0.0 : group.weight_decay);
    s.decay_factor = static_cast<T>(decoupled_ ? 1.0 - group.lr * group.weight_decay : 1.0);
    s.step_size = static_cast<T>(group.lr / bc1);
    s.bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    adam_kernel<T>(param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(),
                   vmax.defined() ? vmax.data<T>() : nullptr, param.numel(), s, group.maximize,
                   decoupled_);
  });
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : AdamW(std::vector<GroupSpec>{GroupSpec{std::move(params), {}, {}}}, options) {}

AdamW::AdamW(const std::vector<GroupSpec>& groups, const AdamWOptions& options)
    : Adam(groups,
           AdamOptions{options.lr, options.beta1, options.beta2, options.eps, options.weight_decay,
                       options.amsgrad, options.maximize},
           true) {}

}  // namespace pw::optim
