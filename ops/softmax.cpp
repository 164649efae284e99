// softmax and log_softmax along any dim. The input is viewed as (outer, D, inner); each of
// the outer * inner lines of D elements is normalised with its max subtracted first.
// Backward from the saved output y:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
// softmax along a contiguous last dim runs kernels::softmax_rows_forward/backward
// (ops/nn_kernels.h); other dims and log_softmax go line by line here.
// FP exceptions are never inspected: without trapping math GCC may turn the selects of
// ops/fast_math.h into blends and vectorise the loops (no value changes, unlike -ffast-math).
// The exp loops are compute-bound in cache, so they use 512-bit vectors where the CPU has them
// (GCC's default tuning stops at 256 bits).
#ifndef __clang__  // clang does not trap math by default and has no such pragmas
#pragma GCC optimize("no-trapping-math")
#pragma GCC target("prefer-vector-width=512")
#endif
#include "ops/softmax.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/fast_math.h"
#include "ops/nn_kernels.h"

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
  if (s == 1 && !log) return kernels::softmax_rows_forward(x, y, L.count(), D);
  for_each_line(L, [&](std::int64_t b) {
    const T* xl = x + b;
    T* yl = y + b;
    if (s == 1) {  // log_softmax along the last dim: vectorised
      const T m = fast::max(xl, D);
      const T lse = m + std::log(fast::exp_shifted(xl, m, yl, D));
      for (std::int64_t i = 0; i < D; ++i) yl[i] = xl[i] - lse;
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
  if (s == 1 && !log) return kernels::softmax_rows_backward(g, y, dx, L.count(), D);
  for_each_line(L, [&](std::int64_t b) {
    const T* gl = g + b;
    const T* yl = y + b;
    T* dl = dx + b;
    if (s == 1) {  // log_softmax along the last dim: vectorised
      const T gs = fast::sum(gl, D);
      for (std::int64_t i = 0; i < D; ++i) dl[i] = gl[i] - fast::exp(yl[i]) * gs;
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

namespace kernels {

template <typename T>
void softmax_rows_forward_reference(const T* x, T* y, std::int64_t rows, std::int64_t D) {
  parallel_for(rows, 1, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * D;
      T* yr = y + r * D;
      T m = -std::numeric_limits<T>::infinity(), sum = 0;
      for (std::int64_t i = 0; i < D; ++i) m = std::max(m, xr[i]);
      for (std::int64_t i = 0; i < D; ++i) sum += (yr[i] = fast::exp(xr[i] - m));
      for (std::int64_t i = 0; i < D; ++i) yr[i] /= sum;
    }
  });
}

// Rows go in blocks of about 2048 elements (in L1), in four passes over the block: row maxima,
// exponentials, row sums, scaling. Each pass is a loop over independent rows, so short rows
// (attention's 65) overlap in the pipeline instead of waiting on one row's max and sum.
template <typename T>
void softmax_rows_forward(const T* x, T* y, std::int64_t rows, std::int64_t D) {
  constexpr std::int64_t kBlockElems = 2048;
  const std::int64_t block = std::max<std::int64_t>(1, kBlockElems / std::max<std::int64_t>(D, 1));
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(D, 1));
  parallel_for(rows, grain, [&](std::int64_t r0, std::int64_t r1) {
    std::array<T, kBlockElems> row_value;  // per row of the block: its max, then 1 / its sum
    for (std::int64_t b0 = r0; b0 < r1; b0 += block) {
      const std::int64_t nb = std::min(r1 - b0, block);
      const T* xb = x + b0 * D;
      T* yb = y + b0 * D;
      for (std::int64_t r = 0; r < nb; ++r) row_value[r] = fast::max(xb + r * D, D);
      for (std::int64_t r = 0; r < nb; ++r) {
        const T* __restrict xr = xb + r * D;
        T* __restrict yr = yb + r * D;
        const T m = row_value[r];
        for (std::int64_t i = 0; i < D; ++i) yr[i] = fast::exp(xr[i] - m);
      }
      for (std::int64_t r = 0; r < nb; ++r) row_value[r] = T(1) / fast::sum(yb + r * D, D);
      for (std::int64_t r = 0; r < nb; ++r) {
        T* __restrict yr = yb + r * D;
        const T inv = row_value[r];
        for (std::int64_t i = 0; i < D; ++i) yr[i] *= inv;
      }
    }
  });
}

template <typename T>
void softmax_rows_backward_reference(const T* g, const T* y, T* dx, std::int64_t rows,
                                     std::int64_t D) {
  parallel_for(rows, 1, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* gr = g + r * D;
      const T* yr = y + r * D;
      T gy = 0;
      for (std::int64_t i = 0; i < D; ++i) gy += gr[i] * yr[i];
      for (std::int64_t i = 0; i < D; ++i) dx[r * D + i] = yr[i] * (gr[i] - gy);
    }
  });
}

template <typename T>
void softmax_rows_backward(const T* g, const T* y, T* dx, std::int64_t rows, std::int64_t D) {
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(D, 1));
  parallel_for(rows, grain, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* __restrict gr = g + r * D;
      const T* __restrict yr = y + r * D;
      T* __restrict dr = dx + r * D;
      const T gy = fast::dot(gr, yr, D);
      for (std::int64_t i = 0; i < D; ++i) dr[i] = yr[i] * (gr[i] - gy);
    }
  });
}

#define PW_SOFTMAX_KERNELS(T)                                                                 \
  template void softmax_rows_forward<T>(const T*, T*, std::int64_t, std::int64_t);            \
  template void softmax_rows_forward_reference<T>(const T*, T*, std::int64_t, std::int64_t);  \
  template void softmax_rows_backward<T>(const T*, const T*, T*, std::int64_t, std::int64_t); \
  template void softmax_rows_backward_reference<T>(const T*, const T*, T*, std::int64_t,      \
                                                   std::int64_t);
PW_SOFTMAX_KERNELS(float)
PW_SOFTMAX_KERNELS(double)
#undef PW_SOFTMAX_KERNELS

}  // namespace kernels

Tensor softmax(const Tensor& x, std::int64_t dim) {
  return softmax_impl("softmax", x, dim, false);
}

Tensor log_softmax(const Tensor& x, std::int64_t dim) {
  return softmax_impl("log_softmax", x, dim, true);
}

}  // namespace pw
