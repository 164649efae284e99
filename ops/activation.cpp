// GELU (exact erf form and tanh form) and SiLU: one pass forward, one pass backward from the
// saved input. The derivatives:
//   gelu(x)  = x Phi(x),                 gelu'(x)  = Phi(x) + x phi(x)
//   gelu_tanh = 0.5 x (1 + tanh u),      u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu_tanh' = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh u
//   silu(x)  = x s(x),                   silu'(x)  = s(x) (1 + x (1 - s(x))),  s = sigmoid
#include <cmath>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
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
      return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
    case Act::GeluTanh:
      return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(kTanhCoef) * x * x * x)));
    case Act::Silu:
      return x / (T(1) + std::exp(-x));
  }
  return x;
}

template <typename T>
T act_derivative(Act a, T x) {
  switch (a) {
    case Act::GeluErf:
      return T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2))) +
             x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    case Act::GeluTanh: {
      const T t = std::tanh(T(kSqrt2OverPi) * (x + T(kTanhCoef) * x * x * x));
      return T(0.5) * (T(1) + t) +
             T(0.5) * x * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * kTanhCoef) * x * x);
    }
    case Act::Silu: {
      const T s = T(1) / (T(1) + std::exp(-x));
      return s * (T(1) + x * (T(1) - s));
    }
  }
  return T(1);
}

// The activation's switch sits outside the loop so that each loop is a plain map.
template <typename T, typename F>
void map_act(Act a, std::int64_t n, F&& body) {
  parallel_for(n, kParallelGrain, [&](std::int64_t b, std::int64_t e) {
    switch (a) {
      case Act::GeluErf:
        for (std::int64_t i = b; i < e; ++i) body(i, Act::GeluErf);
        break;
      case Act::GeluTanh:
        for (std::int64_t i = b; i < e; ++i) body(i, Act::GeluTanh);
        break;
      case Act::Silu:
        for (std::int64_t i = b; i < e; ++i) body(i, Act::Silu);
        break;
    }
  });
}

Tensor activation(const char* name, Act act, const Tensor& x_in) {
  Tensor x = blas::dense(x_in);
  Tensor out = empty(x.shape(), x.dtype());
  PW_DISPATCH(x.dtype(), [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    map_act<scalar_t>(act, x.numel(),
                      [&](std::int64_t i, Act a) { po[i] = act_forward(a, px[i]); });
  });
  if (needs_grad({x_in}))
    record(name, out, {x_in},
           [sx = SavedTensor(x), act](const Tensor& g_in, const Node&) -> std::vector<Tensor> {
             Tensor x = sx.get(), g = blas::dense(g_in);
             Tensor dx = empty(x.shape(), x.dtype());
             PW_DISPATCH(x.dtype(), [&] {
               const scalar_t* px = x.data<scalar_t>();
               const scalar_t* pg = g.data<scalar_t>();
               scalar_t* pd = dx.data<scalar_t>();
               map_act<scalar_t>(act, x.numel(), [&](std::int64_t i, Act a) {
                 pd[i] = pg[i] * act_derivative(a, px[i]);
               });
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
