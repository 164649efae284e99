// layer_norm: one fused kernel forward (row statistics + affine) and one backward, both
// parallel over the R rows of the (R, D) view, D = numel(normalized_shape).
//
//   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps)  (biased variance)
//   y    = xhat * w + b
//   dx   = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = g * w
//   dw   = sum_rows g * xhat,  db = sum_rows g
// The kernels are kernels::layer_norm_forward/backward (ops/nn_kernels.h), each beside its
// plain reference. Statistics are float32 for float32 input, in two passes over the row (mean,
// then the centred sum of squares) on vector partial sums (16 lanes of float with AVX-512).
// FP exceptions are never inspected: without trapping math GCC may turn the selects of
// ops/fast_math.h into blends and vectorise the loops (no value changes, unlike -ffast-math).
// 512-bit vectors where the CPU has them: the rows are in L1, so the loops are compute-bound.
#ifndef __clang__  // clang does not trap math by default and has no such pragmas
#pragma GCC optimize("no-trapping-math")
#pragma GCC target("prefer-vector-width=512")
#endif
#include "ops/layer_norm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/fast_math.h"
#include "ops/nn_kernels.h"

namespace pw {
namespace {

template <typename T>
T inv_std(T sum_sq_dev, std::int64_t D, double eps) {
  return static_cast<T>(1.0 / std::sqrt(static_cast<double>(sum_sq_dev) / D + eps));
}

// One row of the forward affine map y = (x - mu) * rs * w + b, w and b optional.
template <typename T>
void normalize_row(const T* __restrict x, const T* __restrict w, const T* __restrict b,
                   T* __restrict y, T mu, T rs, std::int64_t D) {
  if (w && b) {
    for (std::int64_t i = 0; i < D; ++i) y[i] = (x[i] - mu) * rs * w[i] + b[i];
  } else if (w) {
    for (std::int64_t i = 0; i < D; ++i) y[i] = (x[i] - mu) * rs * w[i];
  } else if (b) {
    for (std::int64_t i = 0; i < D; ++i) y[i] = (x[i] - mu) * rs + b[i];
  } else {
    for (std::int64_t i = 0; i < D; ++i) y[i] = (x[i] - mu) * rs;
  }
}

// Row sums of backward: s1 = sum dxhat and s2 = sum dxhat * xhat, dxhat = g * w (g without
// weight), xhat = (x - mu) * rs, in one pass on vectors.
template <bool kWeight, typename T>
void grad_row_sums(const T* g, const T* x, const T* w, T mu, T rs, std::int64_t D, T& s1, T& s2) {
  constexpr std::int64_t L = fast::kLanes<T>;
  fast::Vec<T> a1{}, a2{}, gv, xv, wv;
  std::int64_t i = 0;
  for (; i + L <= D; i += L) {
    fast::load(gv, g + i);
    fast::load(xv, x + i);
    if constexpr (kWeight) {
      fast::load(wv, w + i);
      gv *= wv;
    }
    a1 += gv;
    a2 += gv * ((xv - mu) * rs);
  }
  s1 = fast::fold_lanes(a1, fast::Plus{});
  s2 = fast::fold_lanes(a2, fast::Plus{});
  for (; i < D; ++i) {
    const T d = kWeight ? g[i] * w[i] : g[i];
    s1 += d;
    s2 += d * ((x[i] - mu) * rs);
  }
}

}  // namespace

namespace kernels {

template <typename T>
void layer_norm_forward_reference(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd,
                                  std::int64_t R, std::int64_t D, double eps) {
  parallel_for(R, 1, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * D;
      T sum = 0, ss = 0;
      for (std::int64_t i = 0; i < D; ++i) sum += xr[i];
      const T mu = sum / static_cast<T>(D);
      for (std::int64_t i = 0; i < D; ++i) ss += (xr[i] - mu) * (xr[i] - mu);
      const T rs = inv_std(ss, D, eps);
      mean[r] = mu;
      rstd[r] = rs;
      for (std::int64_t i = 0; i < D; ++i)
        y[r * D + i] = (xr[i] - mu) * rs * (w ? w[i] : T(1)) + (b ? b[i] : T(0));
    }
  });
}

template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::int64_t R,
                        std::int64_t D, double eps) {
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(D, 1));
  parallel_for(R, grain, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * D;
      // Two passes (mean, then the centred sum of squares) avoid the cancellation of E[x^2]-E[x]^2.
      const T mu = fast::sum(xr, D) / static_cast<T>(D);
      const T rs = inv_std(fast::sq_dev_sum(xr, mu, D), D, eps);
      mean[r] = mu;
      rstd[r] = rs;
      normalize_row(xr, w, b, y + r * D, mu, rs, D);
    }
  });
}

//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = g * w
//   dw = sum_rows g * xhat,  db = sum_rows g
template <typename T>
void layer_norm_backward_reference(const T* g, const T* x, const T* w, const T* mean, const T* rstd,
                                   T* dx, T* dw, T* db, std::int64_t R, std::int64_t D) {
  auto xhat = [&](std::int64_t r, std::int64_t i) { return (x[r * D + i] - mean[r]) * rstd[r]; };
  if (dx)
    parallel_for(R, 1, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        T s1 = 0, s2 = 0;
        for (std::int64_t i = 0; i < D; ++i) {
          const T dxhat = g[r * D + i] * (w ? w[i] : T(1));
          s1 += dxhat;
          s2 += dxhat * xhat(r, i);
        }
        s1 /= static_cast<T>(D);
        s2 /= static_cast<T>(D);
        for (std::int64_t i = 0; i < D; ++i)
          dx[r * D + i] = rstd[r] * (g[r * D + i] * (w ? w[i] : T(1)) - s1 - xhat(r, i) * s2);
      }
    });
  // Parallel over the D outputs: each thread owns whole columns.
  if (dw || db)
    parallel_for(D, 1, [&](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) {
        T sw = 0, sb = 0;
        for (std::int64_t r = 0; r < R; ++r) {
          sw += g[r * D + i] * xhat(r, i);
          sb += g[r * D + i];
        }
        if (dw) dw[i] = sw;
        if (db) db[i] = sb;
      }
    });
}

// Each thread takes a contiguous range of rows: dx row by row, dw and db as per-thread partial
// sums over its rows (so that no two threads write the same entry), added at the end. Per row,
// three passes over data in L1: the dw/db partials, the two row sums, dx.
template <typename T>
void layer_norm_backward(const T* g, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                         T* dw, T* db, std::int64_t R, std::int64_t D) {
  const int nt = R * D >= kParallelGrain && !omp_in_parallel() ? omp_get_max_threads() : 1;
  std::vector<T> part_w(dw ? static_cast<std::size_t>(nt * D) : 0, T(0));
  std::vector<T> part_b(db ? static_cast<std::size_t>(nt * D) : 0, T(0));
#pragma omp parallel num_threads(nt)
  {
    const std::int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    const std::int64_t chunk = (R + n - 1) / n;
    const std::int64_t r0 = std::min(R, t * chunk), r1 = std::min(R, r0 + chunk);
    T* __restrict pw_ = dw ? part_w.data() + t * D : nullptr;
    T* __restrict pb = db ? part_b.data() + t * D : nullptr;
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* __restrict gr = g + r * D;
      const T* __restrict xr = x + r * D;
      const T mu = mean[r], rs = rstd[r];
      if (pw_ && pb) {
        for (std::int64_t i = 0; i < D; ++i) {
          pw_[i] += gr[i] * ((xr[i] - mu) * rs);
          pb[i] += gr[i];
        }
      } else if (pw_) {
        for (std::int64_t i = 0; i < D; ++i) pw_[i] += gr[i] * ((xr[i] - mu) * rs);
      } else if (pb) {
        for (std::int64_t i = 0; i < D; ++i) pb[i] += gr[i];
      }
      if (!dx) continue;
      T s1, s2;
      if (w)
        grad_row_sums<true>(gr, xr, w, mu, rs, D, s1, s2);
      else
        grad_row_sums<false>(gr, xr, w, mu, rs, D, s1, s2);
      s1 /= static_cast<T>(D);
      s2 /= static_cast<T>(D);
      T* __restrict dxr = dx + r * D;
      if (w) {
        for (std::int64_t i = 0; i < D; ++i)
          dxr[i] = rs * (gr[i] * w[i] - s1 - (xr[i] - mu) * rs * s2);
      } else {
        for (std::int64_t i = 0; i < D; ++i) dxr[i] = rs * (gr[i] - s1 - (xr[i] - mu) * rs * s2);
      }
    }
  }
  for (int t = 0; t < nt; ++t)
    for (std::int64_t i = 0; i < D; ++i) {
      if (dw) dw[i] = (t == 0 ? T(0) : dw[i]) + part_w[t * D + i];
      if (db) db[i] = (t == 0 ? T(0) : db[i]) + part_b[t * D + i];
    }
}

#define PW_LAYER_NORM_KERNELS(T)                                                                   \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, std::int64_t,      \
                                      std::int64_t, double);                                       \
  template void layer_norm_forward_reference<T>(const T*, const T*, const T*, T*, T*, T*,          \
                                                std::int64_t, std::int64_t, double);               \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*,   \
                                       T*, std::int64_t, std::int64_t);                            \
  template void layer_norm_backward_reference<T>(const T*, const T*, const T*, const T*, const T*, \
                                                 T*, T*, T*, std::int64_t, std::int64_t);
PW_LAYER_NORM_KERNELS(float)
PW_LAYER_NORM_KERNELS(double)
#undef PW_LAYER_NORM_KERNELS

}  // namespace kernels

namespace {

template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const auto k = static_cast<std::int64_t>(normalized_shape.size());
  bool ok = k >= 1 && k <= x.dim();
  for (std::int64_t i = 0; ok && i < k; ++i) ok = x.shape()[x.dim() - k + i] == normalized_shape[i];
  PW_CHECK(ok, "[layer_norm] input {} does not end with normalized_shape {}", shape_str(x.shape()),
           shape_str(normalized_shape));
  PW_CHECK(!weight.defined() || weight.shape() == normalized_shape,
           "[layer_norm] weight {} does not match normalized_shape {}", shape_str(weight.shape()),
           shape_str(normalized_shape));
  PW_CHECK(!bias.defined() || bias.shape() == normalized_shape,
           "[layer_norm] bias {} does not match normalized_shape {}", shape_str(bias.shape()),
           shape_str(normalized_shape));
  PW_CHECK((!weight.defined() || weight.dtype() == x.dtype()) &&
               (!bias.defined() || bias.dtype() == x.dtype()),
           "[layer_norm] dtype mismatch between input, weight and bias");
  const std::int64_t D = numel_of(normalized_shape), R = D == 0 ? 0 : x.numel() / D;
  Tensor xc = blas::dense(x);
  Tensor wc = weight.defined() ? blas::dense(weight) : Tensor();
  Tensor bc = bias.defined() ? blas::dense(bias) : Tensor();
  Tensor out = empty(x.shape(), x.dtype());
  Tensor mean = empty({R}, x.dtype()), rstd = empty({R}, x.dtype());
  PW_DISPATCH(x.dtype(), [&] {
    kernels::layer_norm_forward<scalar_t>(xc.data<scalar_t>(), ptr_or_null<scalar_t>(wc),
                                          ptr_or_null<scalar_t>(bc), out.data<scalar_t>(),
                                          mean.data<scalar_t>(), rstd.data<scalar_t>(), R, D, eps);
  });
  if (needs_grad({x, weight, bias}))
    record("layer_norm", out, {x, weight, bias},
           [sx = SavedTensor(xc), sw = SavedTensor(wc), mean, rstd, R, D](
               const Tensor& g_in, const Node& n) -> std::vector<Tensor> {
             Tensor x = sx.get(), w = sw.get(), g = blas::dense(g_in);
             Tensor dx = n.needs_input_grad(0) ? empty(x.shape(), x.dtype()) : Tensor();
             Tensor dw = n.needs_input_grad(1) ? empty(w.shape(), x.dtype()) : Tensor();
             Tensor db = n.needs_input_grad(2) ? empty(n.input_shapes[2], x.dtype()) : Tensor();
             PW_DISPATCH(x.dtype(), [&] {
               kernels::layer_norm_backward<scalar_t>(
                   g.data<scalar_t>(), x.data<scalar_t>(), ptr_or_null<scalar_t>(w),
                   mean.data<scalar_t>(), rstd.data<scalar_t>(), ptr_or_null<scalar_t>(dx),
                   ptr_or_null<scalar_t>(dw), ptr_or_null<scalar_t>(db), R, D);
             });
             return {dx, dw, db};
           });
  return out;
}

}  // namespace pw
