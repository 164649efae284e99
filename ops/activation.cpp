// GELU (exact erf form and tanh form) and SiLU: one pass forward, one pass backward from the
// saved input; float uses the vectorisable exp/erf/tanh of ops/fast_math.h. The derivatives:
//   gelu(x)  = x Phi(x),                 gelu'(x)  = Phi(x) + x phi(x)
//   gelu_tanh = 0.5 x (1 + tanh u),      u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu_tanh' = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh u
//   silu(x)  = x s(x),                   silu'(x)  = s(x) (1 + x (1 - s(x))),  s = sigmoid
// FP exceptions are never inspected: without trapping math GCC may turn the selects of
// ops/fast_math.h into blends and vectorise the loops (no value changes, unlike -ffast-math).
#pragma GCC optimize("no-trapping-math")
#include <cmath>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/fast_math.h"
#include "ops/nn.h"

namespace pw {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kTanhCoef = 0.044715;

enum class Act { GeluErf, GeluTanh, Silu };

template <typename T>
T act_forward(Act a, T x) {
  switch (a) {
    case Act::GeluErf:
      return T(0.5) * x * (T(1) + fast::erf(x * T(kInvSqrt2)));
    case Act::GeluTanh:
      return T(0.5) * x * (T(1) + fast::tanh(T(kSqrt2OverPi) * (x + T(kTanhCoef) * x * x * x)));
    case Act::Silu:
      return x / (T(1) + fast::exp(-x));
  }
  return x;
}

template <typename T>
T act_derivative(Act a, T x) {
  switch (a) {
    case Act::GeluErf:
      return T(0.5) * (T(1) + fast::erf(x * T(kInvSqrt2))) +
             x * T(kInvSqrt2Pi) * fast::exp(T(-0.5) * x * x);
    case Act::GeluTanh: {
      const T t = fast::tanh(T(kSqrt2OverPi) * (x + T(kTanhCoef) * x * x * x));
      return T(0.5) * (T(1) + t) +
             T(0.5) * x * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * kTanhCoef) * x * x);
    }
    case Act::Silu: {
      const T s = T(1) / (T(1) + fast::exp(-x));
      return s * (T(1) + x * (T(1) - s));
    }
  }
  return T(1);
}

// y = f(x) (forward) or y = g * f'(x) (backward) over n contiguous elements. The activation
// is a template argument so that each loop is a plain, vectorisable map over local pointers.
template <Act A, typename T>
void act_loop(const T* __restrict x, const T* __restrict g, T* __restrict y, std::int64_t n) {
  if (g) {
    for (std::int64_t i = 0; i < n; ++i) y[i] = g[i] * act_derivative(A, x[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) y[i] = act_forward(A, x[i]);
  }
}

template <typename T>
void act_map(Act a, const T* x, const T* g, T* y, std::int64_t n) {
  parallel_for(n, kParallelGrain, [=](std::int64_t b, std::int64_t e) {
    const T* gb = g ? g + b : nullptr;
    switch (a) {
      case Act::GeluErf:
        return act_loop<Act::GeluErf>(x + b, gb, y + b, e - b);
      case Act::GeluTanh:
        return act_loop<Act::GeluTanh>(x + b, gb, y + b, e - b);
      case Act::Silu:
        return act_loop<Act::Silu>(x + b, gb, y + b, e - b);
    }
  });
}

Tensor activation(const char* name, Act act, const Tensor& x_in) {
  Tensor x = blas::dense(x_in);
  Tensor out = empty(x.shape(), x.dtype());
  PW_DISPATCH(x.dtype(), [&] {
    act_map<scalar_t>(act, x.data<scalar_t>(), nullptr, out.data<scalar_t>(), x.numel());
  });
  if (needs_grad({x_in}))
    record(name, out, {x_in},
           [sx = SavedTensor(x), act](const Tensor& g_in, const Node&) -> std::vector<Tensor> {
             Tensor x = sx.get(), g = blas::dense(g_in);
             Tensor dx = empty(x.shape(), x.dtype());
             PW_DISPATCH(x.dtype(), [&] {
               act_map<scalar_t>(act, x.data<scalar_t>(), g.data<scalar_t>(), dx.data<scalar_t>(),
                                 x.numel());
             });
             return {dx};
           });
  return out;
}

}  // namespace

Tensor gelu(const Tensor& x, const std::string& approximate) {
  PW_CHECK(approximate == "none" || approximate == "tanh",
           "[gelu] approximate must be \"none\" or \"tanh\", got \"{}\"", approximate);
  return approximate == "none" ? activation("gelu", Act::GeluErf, x)
                               : activation("gelu", Act::GeluTanh, x);
}

Tensor silu(const Tensor& x) {
  return activation("silu", Act::Silu, x);
}

}  // namespace pw
