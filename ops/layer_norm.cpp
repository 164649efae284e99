// layer_norm: one fused kernel forward (row statistics + affine) and one backward, both
// parallel over the R rows of the (R, D) view, D = numel(normalized_shape).
//
//   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps)  (biased variance)
//   y    = xhat * w + b
//   dx   = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = g * w
//   dw   = sum_rows g * xhat,  db = sum_rows g
// FP exceptions are never inspected: without trapping math GCC may turn the selects of
// ops/fast_math.h into blends and vectorise the loops (no value changes, unlike -ffast-math).
#pragma GCC optimize("no-trapping-math")
#include <omp.h>

#include <cmath>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/fast_math.h"
#include "ops/nn.h"

namespace pw {
namespace {

template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::int64_t R,
                        std::int64_t D, double eps) {
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(D, 1));
  parallel_for(R, grain, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * D;
      T* yr = y + r * D;
      // Two passes (mean, then the centred sum of squares) avoid the cancellation of E[x^2]-E[x]^2.
      const T mu = fast::sum(xr, D) / static_cast<T>(D);
      const T ss = fast::sq_dev_sum(xr, mu, D);
      const T rs = static_cast<T>(1.0 / std::sqrt(static_cast<double>(ss) / D + eps));
      mean[r] = mu;
      rstd[r] = rs;
      if (w && b) {
        for (std::int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mu) * rs * w[i] + b[i];
      } else if (w) {
        for (std::int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mu) * rs * w[i];
      } else if (b) {
        for (std::int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mu) * rs + b[i];
      } else {
        for (std::int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mu) * rs;
      }
    }
  });
}

// dx (when asked) per row; dw and db as per-thread partial sums over rows, added at the end so
// that no two threads write the same gradient entry.
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
    T* pw_ = dw ? part_w.data() + t * D : nullptr;
    T* pb = db ? part_b.data() + t * D : nullptr;
    std::vector<T> xhat(static_cast<std::size_t>(D)), dxhat(static_cast<std::size_t>(D));
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* gr = g + r * D;
      const T* xr = x + r * D;
      const T mu = mean[r], rs = rstd[r];
      T* xh = xhat.data();
      for (std::int64_t i = 0; i < D; ++i) xh[i] = (xr[i] - mu) * rs;
      if (pw_)
        for (std::int64_t i = 0; i < D; ++i) pw_[i] += gr[i] * xh[i];
      if (pb)
        for (std::int64_t i = 0; i < D; ++i) pb[i] += gr[i];
      if (!dx) continue;
      const T* dxh = gr;
      if (w) {
        for (std::int64_t i = 0; i < D; ++i) dxhat[i] = gr[i] * w[i];
        dxh = dxhat.data();
      }
      // Row means of dxhat and dxhat * xhat.
      const T s1 = fast::sum(dxh, D) / static_cast<T>(D);
      const T s2 = fast::dot(dxh, xh, D) / static_cast<T>(D);
      T* dxr = dx + r * D;
      for (std::int64_t i = 0; i < D; ++i) dxr[i] = rs * (dxh[i] - s1 - xh[i] * s2);
    }
  }
  for (int t = 0; t < nt; ++t)
    for (std::int64_t i = 0; i < D; ++i) {
      if (dw) dw[i] = (t == 0 ? T(0) : dw[i]) + part_w[t * D + i];
      if (db) db[i] = (t == 0 ? T(0) : db[i]) + part_b[t * D + i];
    }
}

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
    layer_norm_forward<scalar_t>(xc.data<scalar_t>(), ptr_or_null<scalar_t>(wc),
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
               layer_norm_backward<scalar_t>(
                   g.data<scalar_t>(), x.data<scalar_t>(), ptr_or_null<scalar_t>(w),
                   mean.data<scalar_t>(), rstd.data<scalar_t>(), ptr_or_null<scalar_t>(dx),
                   ptr_or_null<scalar_t>(dw), ptr_or_null<scalar_t>(db), R, D);
             });
             return {dx, dw, db};
           });
  return out;
}

}  // namespace pw
