#include "optim/sgd.h"

#include "core/error.h"
#include "core/parallel.h"

namespace pw::optim {

namespace {

ParamGroup sgd_defaults(const SGDOptions& o) {
  ParamGroup g;
  g.lr = o.lr;
  g.momentum = o.momentum;
  g.dampening = o.dampening;
  g.weight_decay = o.weight_decay;
  g.nesterov = o.nesterov;
  g.maximize = o.maximize;
  return g;
}

// The fused update over one contiguous parameter; `buf` is null when momentum is 0.
template <typename T>
void sgd_kernel(T* p, const T* g, T* buf, std::int64_t n, const ParamGroup& group, bool first) {
  const T lr = static_cast<T>(group.lr), wd = static_cast<T>(group.weight_decay);
  const T mu = static_cast<T>(group.momentum), keep = static_cast<T>(1.0 - group.dampening);
  const bool maximize = group.maximize, nesterov = group.nesterov;
  parallel_for(n, kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      T d = maximize ? -g[i] : g[i];
      if (wd != T(0)) d += wd * p[i];
      if (buf != nullptr) {
        buf[i] = first ? d : mu * buf[i] + keep * d;
        d = nesterov ? d + mu * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  });
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : SGD(std::vector<GroupSpec>{GroupSpec{std::move(params), {}, {}}}, options) {}

SGD::SGD(const std::vector<GroupSpec>& groups, const SGDOptions& options)
    : Optimizer(make_groups(groups, sgd_defaults(options))) {
  for (const ParamGroup& g : groups_) validate(g);
}

void SGD::validate(const ParamGroup& g) const {
  PW_CHECK(g.lr >= 0.0, "[SGD] invalid learning rate {}", g.lr);
  PW_CHECK(g.momentum >= 0.0, "[SGD] invalid momentum {}", g.momentum);
  PW_CHECK(g.weight_decay >= 0.0, "[SGD] invalid weight_decay {}", g.weight_decay);
  PW_CHECK(!g.nesterov || (g.momentum > 0.0 && g.dampening == 0.0),
           "[SGD] Nesterov momentum requires momentum > 0 and dampening 0, got momentum {} and "
           "dampening {}",
           g.momentum, g.dampening);
}

void SGD::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                 ParamState& state) {
  ++state.step;
  Tensor buf;
  bool first = false;
  if (group.momentum != 0.0) {
    buf = state.find("momentum_buffer");
    if (!buf.defined()) {
      // PyTorch starts the buffer at the first gradient, not at zero (b_1 = g_1).
      buf = empty_like(param);
      state.buffers["momentum_buffer"] = buf;
      first = true;
    }
  }
  PW_DISPATCH(param.dtype(), [&] {
    sgd_kernel<scalar_t>(param.data<scalar_t>(), grad.data<scalar_t>(),
                         buf.defined() ? buf.data<scalar_t>() : nullptr, param.numel(), group,
                         first);
  });
}

}  // namespace pw::optim
