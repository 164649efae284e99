// GELU (exact erf form and tanh form) and SiLU: one pass forward, one pass backward from the
// saved input; float uses the vectorisable exp/erf/tanh of ops/fast_math.h. The derivatives:
//   gelu(x)  = x Phi(x),                 gelu'(x)  = Phi(x) + x phi(x)
//   gelu_tanh = 0.5 x (1 + tanh u),      u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu_tanh' = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh u
//   silu(x)  = x s(x),                   silu'(x)  = s(x) (1 + x (1 - s(x))),  s = sigmoid
// Exact GELU runs kernels::gelu_forward/backward (ops/nn_kernels.h), which in float share one
// exp between Phi and phi; the other activations map act_forward/act_derivative, which also
// serve as GELU's reference kernels.
// FP exceptions are never inspected: without trapping math GCC may turn the selects of
// ops/fast_math.h into blends and vectorise the loops (no value changes, unlike -ffast-math).
// The loops are compute-bound in cache, so they use 512-bit vectors where the CPU has them
// (GCC's default tuning stops at 256 bits).
#ifndef __clang__  // clang does not trap math by default and has no such pragmas
#pragma GCC optimize("no-trapping-math")
#pragma GCC target("prefer-vector-width=512")
#endif
#include "ops/activation.h"

#include <cmath>
#include <type_traits>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/fast_math.h"
#include "ops/nn_kernels.h"

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

// Phi(x) = 0.5 (1 + erf(x / sqrt 2)) from e = exp(-x^2 / 2), by the Abramowitz & Stegun
// formula of fast::erf written as the normal tail q = 0.5 t P(t) e (t = 1 / (1 + p |x| / sqrt 2)):
// Phi = q for x < 0 and 1 - q otherwise, so the left tail keeps its digits instead of
// cancelling in 1 + erf.
inline float normal_cdf(float x, float e) {
  const float t = 1.0f / (1.0f + static_cast<float>(0.3275911 * kInvSqrt2) * std::fabs(x));
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float q = 0.5f * p * t * e;
  return x < 0.0f ? q : 1.0f - q;
}

Tensor activation(const char* name, Act act, const Tensor& x_in) {
  Tensor x = blas::dense(x_in);
  Tensor out = empty(x.shape(), x.dtype());
  PW_DISPATCH(x.dtype(), [&] {
    if (act == Act::GeluErf)
      kernels::gelu_forward<scalar_t>(x.data<scalar_t>(), out.data<scalar_t>(), x.numel());
    else
      act_map<scalar_t>(act, x.data<scalar_t>(), nullptr, out.data<scalar_t>(), x.numel());
  });
  if (needs_grad({x_in}))
    record(name, out, {x_in},
           [sx = SavedTensor(x), act](const Tensor& g_in, const Node&) -> std::vector<Tensor> {
             Tensor x = sx.get(), g = blas::dense(g_in);
             Tensor dx = empty(x.shape(), x.dtype());
             PW_DISPATCH(x.dtype(), [&] {
               if (act == Act::GeluErf)
                 kernels::gelu_backward<scalar_t>(g.data<scalar_t>(), x.data<scalar_t>(),
                                                  dx.data<scalar_t>(), x.numel());
               else
                 act_map<scalar_t>(act, x.data<scalar_t>(), g.data<scalar_t>(), dx.data<scalar_t>(),
                                   x.numel());
             });
             return {dx};
           });
  return out;
}

}  // namespace

namespace kernels {

template <typename T>
void gelu_forward_reference(const T* x, T* y, std::int64_t n) {
  act_map<T>(Act::GeluErf, x, nullptr, y, n);
}

template <typename T>
void gelu_backward_reference(const T* g, const T* x, T* dx, std::int64_t n) {
  act_map<T>(Act::GeluErf, x, g, dx, n);
}

// Float shares e = exp(-x^2 / 2) between Phi and phi; double keeps libm's erf and exp.
template <typename T>
void gelu_forward(const T* x, T* y, std::int64_t n) {
  if constexpr (!std::is_same_v<T, float>) {
    gelu_forward_reference(x, y, n);
  } else {
    parallel_for(n, kParallelGrain, [=](std::int64_t b, std::int64_t e) {
      const float* __restrict xb = x + b;
      float* __restrict yb = y + b;
      for (std::int64_t i = 0; i < e - b; ++i)
        yb[i] = xb[i] * normal_cdf(xb[i], fast::exp(-0.5f * xb[i] * xb[i]));
    });
  }
}

template <typename T>
void gelu_backward(const T* g, const T* x, T* dx, std::int64_t n) {
  if constexpr (!std::is_same_v<T, float>) {
    gelu_backward_reference(g, x, dx, n);
  } else {
    parallel_for(n, kParallelGrain, [=](std::int64_t b, std::int64_t e) {
      const float* __restrict gb = g + b;
      const float* __restrict xb = x + b;
      float* __restrict db = dx + b;
      for (std::int64_t i = 0; i < e - b; ++i) {
        const float ex = fast::exp(-0.5f * xb[i] * xb[i]);
        db[i] = gb[i] * (normal_cdf(xb[i], ex) + xb[i] * static_cast<float>(kInvSqrt2Pi) * ex);
      }
    });
  }
}

template void gelu_forward<float>(const float*, float*, std::int64_t);
template void gelu_forward<double>(const double*, double*, std::int64_t);
template void gelu_forward_reference<float>(const float*, float*, std::int64_t);
template void gelu_forward_reference<double>(const double*, double*, std::int64_t);
template void gelu_backward<float>(const float*, const float*, float*, std::int64_t);
template void gelu_backward<double>(const double*, const double*, double*, std::int64_t);
template void gelu_backward_reference<float>(const float*, const float*, float*, std::int64_t);
template void gelu_backward_reference<double>(const double*, const double*, double*, std::int64_t);

}  // namespace kernels

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
