// softmax and log_softmax along any dim. The input is viewed as (outer, D, inner); each of
// the outer * inner lines of D elements is normalised with its max subtracted first.
// Backward from the saved output y:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
// FP exceptions are never inspected: without trapping math GCC may turn the selects of
// ops/fast_math.h into blends and vectorise the loops (no value changes, unlike -ffast-math).
#pragma GCC optimize("no-trapping-math")
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/fast_math.h"
#include "ops/nn.h"

namespace pw {
namespace {

struct Lines {
  std::int64_t outer = 1, D = 1, inner = 1;
  std::int64_t count() const { return outer * inner; }
  // Offset of line l's first element; its elements are `inner` apart.
  std::int64_t base(std::int64_t l) const { return (l / inner) * D * inner + l % inner; }
};

Lines lines_of(const Shape& shape, std::int64_t dim) {
  Lines L;
  for (std::int64_t d = 0; d < dim; ++d) L.outer *= shape[d];
  L.D = shape.empty() ? 1 : shape[dim];
  for (std::size_t d = dim + 1; d < shape.size(); ++d) L.inner *= shape[d];
  return L;
}

template <typename F>
void for_each_line(const Lines& L, F&& fn) {
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(L.D, 1));
  parallel_for(L.count(), grain, [&](std::int64_t l0, std::int64_t l1) {
    for (std::int64_t l = l0; l < l1; ++l) fn(L.base(l));
  });
}

template <typename T>
void softmax_forward(const T* x, T* y, const Lines& L, bool log) {
  const std::int64_t D = L.D, s = L.inner;
  for_each_line(L, [&](std::int64_t b) {
    const T* xl = x + b;
    T* yl = y + b;
    if (s == 1) {  // rows along the last dim: vectorised
      const T m = fast::max(xl, D);
      if (log) {
        const T lse = m + std::log(fast::exp_shifted(xl, m, yl, D));
        for (std::int64_t i = 0; i < D; ++i) yl[i] = xl[i] - lse;
      } else {
        const T inv = T(1) / fast::exp_shifted(xl, m, yl, D);
        for (std::int64_t i = 0; i < D; ++i) yl[i] *= inv;
      }
      return;
    }
    T m = -std::numeric_limits<T>::infinity();
    for (std::int64_t i = 0; i < D; ++i) m = std::max(m, xl[i * s]);
    T sum = 0;
    if (log) {
      for (std::int64_t i = 0; i < D; ++i) sum += fast::exp(xl[i * s] - m);
      const T lse = m + std::log(sum);
      for (std::int64_t i = 0; i < D; ++i) yl[i * s] = xl[i * s] - lse;
    } else {
      for (std::int64_t i = 0; i < D; ++i) sum += (yl[i * s] = fast::exp(xl[i * s] - m));
      const T inv = T(1) / sum;
      for (std::int64_t i = 0; i < D; ++i) yl[i * s] *= inv;
    }
  });
}

template <typename T>
void softmax_backward(const T* g, const T* y, T* dx, const Lines& L, bool log) {
  const std::int64_t D = L.D, s = L.inner;
  for_each_line(L, [&](std::int64_t b) {
    const T* gl = g + b;
    const T* yl = y + b;
    T* dl = dx + b;
    if (s == 1) {
      if (log) {
        const T gs = fast::sum(gl, D);
        for (std::int64_t i = 0; i < D; ++i) dl[i] = gl[i] - fast::exp(yl[i]) * gs;
      } else {
        const T gy = fast::dot(gl, yl, D);
        for (std::int64_t i = 0; i < D; ++i) dl[i] = yl[i] * (gl[i] - gy);
      }
      return;
    }
    T dot = 0;
    if (log) {
      for (std::int64_t i = 0; i < D; ++i) dot += gl[i * s];
      for (std::int64_t i = 0; i < D; ++i) dl[i * s] = gl[i * s] - fast::exp(yl[i * s]) * dot;
    } else {
      for (std::int64_t i = 0; i < D; ++i) dot += gl[i * s] * yl[i * s];
      for (std::int64_t i = 0; i < D; ++i) dl[i * s] = yl[i * s] * (gl[i * s] - dot);
    }
  });
}

Tensor softmax_impl(const char* name, const Tensor& x_in, std::int64_t dim, bool log) {
  const std::int64_t d = x_in.dim() == 0 ? 0 : wrap_dim(dim, x_in.dim(), name);
  Tensor x = blas::dense(x_in);
  const Lines L = lines_of(x.shape(), d);
  Tensor out = empty(x.shape(), x.dtype());
  PW_DISPATCH(x.dtype(),
              [&] { softmax_forward<scalar_t>(x.data<scalar_t>(), out.data<scalar_t>(), L, log); });
  if (needs_grad({x_in}))
    record(name, out, {x_in},
           [so = SavedTensor(out), L, log](const Tensor& g_in, const Node&) -> std::vector<Tensor> {
             Tensor y = so.get(), g = blas::dense(g_in);
             Tensor dx = empty(y.shape(), y.dtype());
             PW_DISPATCH(y.dtype(), [&] {
               softmax_backward<scalar_t>(g.data<scalar_t>(), y.data<scalar_t>(),
                                          dx.data<scalar_t>(), L, log);
             });
             return {dx};
           });
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t dim) {
  return softmax_impl("softmax", x, dim, false);
}

Tensor log_softmax(const Tensor& x, std::int64_t dim) {
  return softmax_impl("log_softmax", x, dim, true);
}

}  // namespace pw
