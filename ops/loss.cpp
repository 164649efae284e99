// Losses. cross_entropy is fused with log_softmax: one pass per row of the logits (B, C)
// computes log p = x - logsumexp(x) and the loss; the backward is (p - target) scaled by the
// upstream gradient (/B for the mean). With label smoothing eps (PyTorch's definition) the
// target is (1 - eps) onehot(y) + eps / C, or (1 - eps) t + eps / C for soft targets t.
#include "ops/loss.h"

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"

namespace pw {
namespace {

Tensor reduced_output(Reduction r, std::int64_t B, DType dt) {
  return r == Reduction::None ? empty({B}, dt) : empty({}, dt);
}

// Per-row losses l (B) into the op's output: as is, summed or averaged.
template <typename T>
void reduce_into(const std::vector<T>& l, Reduction r, T* out) {
  if (r == Reduction::None) {
    std::copy(l.begin(), l.end(), out);
    return;
  }
  double s = 0;
  for (T v : l) s += v;
  if (r == Reduction::Mean) s /= std::max<std::size_t>(l.size(), 1);
  *out = static_cast<T>(s);
}

// The upstream gradient's weight on row i: g_i, g, or g / n.
template <typename T>
std::vector<T> row_weights(const Tensor& g_in, Reduction r, std::int64_t n, std::int64_t rows) {
  Tensor g = blas::dense(g_in);
  const T* pg = g.data<T>();
  std::vector<T> w(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i)
    w[i] = r == Reduction::None ? pg[i] : r == Reduction::Sum ? pg[0] : pg[0] / static_cast<T>(n);
  return w;
}

// Class indices from a float tensor of integer values, checked against the number of classes.
std::vector<std::int64_t> class_indices(const char* op, const Tensor& target, std::int64_t C) {
  const auto v = target.to_vector<double>();
  std::vector<std::int64_t> idx(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    PW_CHECK(v[i] == std::floor(v[i]), "[{}] target {} at index {} is not an integer class index",
             op, v[i], i);
    PW_CHECK(v[i] >= 0 && v[i] < static_cast<double>(C),
             "[{}] target {} at index {} is out of range for {} classes", op, v[i], i, C);
    idx[i] = static_cast<std::int64_t>(v[i]);
  }
  return idx;
}

// log p (B, C) = x - logsumexp(x) per row.
template <typename T>
void log_softmax_rows(const T* x, T* lp, std::int64_t B, std::int64_t C) {
  parallel_for(B, std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(C, 1)),
               [&](std::int64_t r0, std::int64_t r1) {
                 for (std::int64_t r = r0; r < r1; ++r) {
                   const T* xr = x + r * C;
                   T m = -std::numeric_limits<T>::infinity();
                   for (std::int64_t c = 0; c < C; ++c) m = std::max(m, xr[c]);
                   T s = 0;
                   for (std::int64_t c = 0; c < C; ++c) s += std::exp(xr[c] - m);
                   const T lse = m + std::log(s);
                   for (std::int64_t c = 0; c < C; ++c) lp[r * C + c] = xr[c] - lse;
                 }
               });
}

void check_logits(const char* op, const Tensor& logits, const Shape& target_shape, bool soft) {
  const bool ok = logits.dim() == 2 && (soft ? target_shape == logits.shape()
                                             : target_shape == Shape{logits.shape()[0]});
  PW_CHECK(ok, "[{}] expected logits (B, C) and target {}, got {} and {}", op,
           soft ? "(B, C)" : "(B)", shape_str(logits.shape()), shape_str(target_shape));
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                     double label_smoothing) {
  check_logits("cross_entropy", logits, target.shape(), false);
  PW_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
           "[cross_entropy] label_smoothing must be in [0, 1], got {}", label_smoothing);
  const std::int64_t B = logits.shape()[0], C = logits.shape()[1];
  const auto y = class_indices("cross_entropy", target, C);
  Tensor x = blas::dense(logits);
  Tensor lp = empty({B, C}, x.dtype());
  Tensor out = reduced_output(reduction, B, x.dtype());
  const double eps = label_smoothing;
  PW_DISPATCH(x.dtype(), [&] {
    const scalar_t* p = lp.data<scalar_t>();
    log_softmax_rows(x.data<scalar_t>(), lp.data<scalar_t>(), B, C);
    // loss_i = -(1 - eps) log p_{i,y_i} - eps / C sum_c log p_{i,c}
    std::vector<scalar_t> l(static_cast<std::size_t>(B));
    for (std::int64_t i = 0; i < B; ++i) {
      double s = 0;
      if (eps > 0)
        for (std::int64_t c = 0; c < C; ++c) s += p[i * C + c];
      l[i] = static_cast<scalar_t>(-(1 - eps) * p[i * C + y[i]] - eps / C * s);
    }
    reduce_into(l, reduction, out.data<scalar_t>());
  });
  if (needs_grad({logits}))
    record("cross_entropy", out, {logits},
           [lp, y, reduction, eps](const Tensor& g, const Node&) -> std::vector<Tensor> {
             const std::int64_t B = lp.shape()[0], C = lp.shape()[1];
             Tensor dx = empty({B, C}, lp.dtype());
             PW_DISPATCH(lp.dtype(), [&] {
               const auto w = row_weights<scalar_t>(g, reduction, B, B);
               const scalar_t* p = lp.data<scalar_t>();
               scalar_t* d = dx.data<scalar_t>();
               const auto off = static_cast<scalar_t>(eps / C);
               for (std::int64_t i = 0; i < B; ++i) {
                 for (std::int64_t c = 0; c < C; ++c)
                   d[i * C + c] = w[i] * (std::exp(p[i * C + c]) - off);
                 d[i * C + y[i]] -= w[i] * static_cast<scalar_t>(1 - eps);
               }
             });
             return {dx};
           });
  return out;
}

Tensor cross_entropy_soft(const Tensor& logits, const Tensor& target_probs, Reduction reduction,
                          double label_smoothing) {
  check_logits("cross_entropy_soft", logits, target_probs.shape(), true);
  PW_CHECK(logits.dtype() == target_probs.dtype(), "[cross_entropy_soft] dtype mismatch: {} and {}",
           dtype_name(logits.dtype()), dtype_name(target_probs.dtype()));
  PW_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
           "[cross_entropy_soft] label_smoothing must be in [0, 1], got {}", label_smoothing);
  const std::int64_t B = logits.shape()[0], C = logits.shape()[1];
  Tensor x = blas::dense(logits), t = blas::dense(target_probs);
  Tensor lp = empty({B, C}, x.dtype());
  Tensor out = reduced_output(reduction, B, x.dtype());
  const double eps = label_smoothing;
  PW_DISPATCH(x.dtype(), [&] {
    const scalar_t* p = lp.data<scalar_t>();
    const scalar_t* pt = t.data<scalar_t>();
    log_softmax_rows(x.data<scalar_t>(), lp.data<scalar_t>(), B, C);
    // loss_i = -sum_c t'_c log p_c with t' = (1 - eps) t + eps / C
    std::vector<scalar_t> l(static_cast<std::size_t>(B));
    for (std::int64_t i = 0; i < B; ++i) {
      double s = 0;
      for (std::int64_t c = 0; c < C; ++c)
        s += ((1 - eps) * pt[i * C + c] + eps / C) * p[i * C + c];
      l[i] = static_cast<scalar_t>(-s);
    }
    reduce_into(l, reduction, out.data<scalar_t>());
  });
  if (needs_grad({logits, target_probs}))
    record("cross_entropy_soft", out, {logits, target_probs},
           [lp, st = SavedTensor(t), reduction, eps](const Tensor& g,
                                                     const Node& n) -> std::vector<Tensor> {
             const std::int64_t B = lp.shape()[0], C = lp.shape()[1];
             Tensor t = st.get();
             Tensor dx = n.needs_input_grad(0) ? empty({B, C}, lp.dtype()) : Tensor();
             Tensor dt = n.needs_input_grad(1) ? empty({B, C}, lp.dtype()) : Tensor();
             PW_DISPATCH(lp.dtype(), [&] {
               const auto w = row_weights<scalar_t>(g, reduction, B, B);
               const scalar_t* p = lp.data<scalar_t>();
               const scalar_t* pt = t.data<scalar_t>();
               for (std::int64_t i = 0; i < B; ++i) {
                 // d/dx_c = p_c sum(t') - t'_c (sum(t') = 1 for probability targets).
                 scalar_t ts = 0;
                 for (std::int64_t c = 0; c < C; ++c)
                   ts += static_cast<scalar_t>((1 - eps) * pt[i * C + c] + eps / C);
                 for (std::int64_t c = 0; c < C; ++c) {
                   const auto tc = static_cast<scalar_t>((1 - eps) * pt[i * C + c] + eps / C);
                   if (dx.defined())
                     dx.data<scalar_t>()[i * C + c] = w[i] * (std::exp(p[i * C + c]) * ts - tc);
                   if (dt.defined())
                     dt.data<scalar_t>()[i * C + c] =
                         -w[i] * static_cast<scalar_t>(1 - eps) * p[i * C + c];
                 }
               }
             });
             return {dx, dt};
           });
  return out;
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction) {
  check_logits("nll_loss", log_probs, target.shape(), false);
  const std::int64_t B = log_probs.shape()[0], C = log_probs.shape()[1];
  const auto y = class_indices("nll_loss", target, C);
  Tensor lp = blas::dense(log_probs);
  Tensor out = reduced_output(reduction, B, lp.dtype());
  PW_DISPATCH(lp.dtype(), [&] {
    std::vector<scalar_t> l(static_cast<std::size_t>(B));
    for (std::int64_t i = 0; i < B; ++i) l[i] = -lp.data<scalar_t>()[i * C + y[i]];
    reduce_into(l, reduction, out.data<scalar_t>());
  });
  if (needs_grad({log_probs}))
    record(
        "nll_loss", out, {log_probs},
        [y, reduction, B, C, dt = lp.dtype()](const Tensor& g, const Node&) -> std::vector<Tensor> {
          Tensor d = zeros({B, C}, dt);
          PW_DISPATCH(dt, [&] {
            const auto w = row_weights<scalar_t>(g, reduction, B, B);
            for (std::int64_t i = 0; i < B; ++i) d.data<scalar_t>()[i * C + y[i]] = -w[i];
          });
          return {d};
        });
  return out;
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  PW_CHECK(input.shape() == target.shape(), "[mse_loss] input {} and target {} differ in shape",
           shape_str(input.shape()), shape_str(target.shape()));
  PW_CHECK(input.dtype() == target.dtype(), "[mse_loss] dtype mismatch: {} and {}",
           dtype_name(input.dtype()), dtype_name(target.dtype()));
  Tensor x = blas::dense(input), t = blas::dense(target);
  const std::int64_t n = x.numel();
  Tensor out = reduction == Reduction::None ? empty(x.shape(), x.dtype()) : empty({}, x.dtype());
  PW_DISPATCH(x.dtype(), [&] {
    const scalar_t* px = x.data<scalar_t>();
    const scalar_t* pt = t.data<scalar_t>();
    std::vector<scalar_t> l(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) l[i] = (px[i] - pt[i]) * (px[i] - pt[i]);
    reduce_into(l, reduction, out.data<scalar_t>());
  });
  if (needs_grad({input, target}))
    record("mse_loss", out, {input, target},
           [sx = SavedTensor(x), st = SavedTensor(t), reduction](
               const Tensor& g, const Node& node) -> std::vector<Tensor> {
             Tensor x = sx.get(), t = st.get();
             const std::int64_t n = x.numel();
             Tensor dx = empty(x.shape(), x.dtype());
             PW_DISPATCH(x.dtype(), [&] {
               // d/dx (x - t)^2 = 2 (x - t); the target gets the negative.
               const auto w = row_weights<scalar_t>(g, reduction, n, n);
               const scalar_t* px = x.data<scalar_t>();
               const scalar_t* pt = t.data<scalar_t>();
               scalar_t* pd = dx.data<scalar_t>();
               for (std::int64_t i = 0; i < n; ++i) pd[i] = 2 * w[i] * (px[i] - pt[i]);
             });
             Tensor dt;
             if (node.needs_input_grad(1)) {
               dt = copy_contiguous(dx);
               PW_DISPATCH(dt.dtype(), [&] {
                 scalar_t* p = dt.data<scalar_t>();
                 for (std::int64_t i = 0; i < n; ++i) p[i] = -p[i];
               });
             }
             return {node.needs_input_grad(0) ? dx : Tensor(), dt};
           });
  return out;
}

}  // namespace pw
