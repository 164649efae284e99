// Indexing by integer-valued float tensors: index_select and gather, with their scatter-add
// backward rules. Indices are validated on the calling thread before any parallel kernel runs
// (an exception must not escape an OpenMP region).
#include "ops/index.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/kernels.h"
#include "ops/shape.h"

namespace pw {
namespace {

// The values of `index` in row-major order, each checked to be an integer in [0, size).
std::vector<std::int64_t> read_indices(const char* op, const Tensor& index, std::int64_t dim,
                                       std::int64_t size) {
  const std::vector<double> values = index.to_vector<double>();
  std::vector<std::int64_t> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    PW_CHECK(std::floor(v) == v, "[{}] index {} is not an integer", op, v);
    PW_CHECK(v >= 0 && v < static_cast<double>(size),
             "[{}] index {} is out of range for dim {} of size {}", op, v, dim, size);
    out[i] = static_cast<std::int64_t>(v);
  }
  return out;
}

// A (outer, n, inner) view of a contiguous tensor around `dim`.
struct Around {
  std::int64_t outer = 1, n = 1, inner = 1;
};
Around around(const Shape& shape, std::size_t dim) {
  Around a;
  for (std::size_t d = 0; d < shape.size(); ++d)
    (d < dim ? a.outer : d == dim ? a.n : a.inner) *= shape[d];
  return a;
}

}  // namespace

Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index) {
  PW_CHECK(x.dim() > 0, "[index_select] cannot index a 0-dim tensor");
  const auto d = static_cast<std::size_t>(wrap_dim(dim, x.dim(), "index_select"));
  PW_CHECK(index.dim() <= 1, "[index_select] index must be 0-D or 1-D, got shape {}",
           shape_str(index.shape()));
  const auto idx = read_indices("index_select", index, static_cast<std::int64_t>(d), x.shape()[d]);
  const auto k_count = static_cast<std::int64_t>(idx.size());
  const Around a = around(x.shape(), d);
  Shape shape = x.shape();
  shape[d] = k_count;
  Tensor out = empty(shape, x.dtype());
  const Tensor xc = x.is_contiguous() ? x : copy_contiguous(x);
  // out (outer, K, inner) [o, k, :] = x (outer, n, inner) [o, idx[k], :]
  PW_DISPATCH(x.dtype(), [&] {
    const scalar_t* px = xc.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    parallel_for(a.outer * k_count,
                 std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(a.inner, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                   for (std::int64_t t = b; t < e; ++t) {
                     const std::int64_t o = t / k_count, k = t % k_count;
                     const scalar_t* src =
                         px + (o * a.n + idx[static_cast<std::size_t>(k)]) * a.inner;
                     std::copy(src, src + a.inner, po + t * a.inner);
                   }
                 });
  });
  if (needs_grad({x}))
    record(
        "index_select", out, {x},
        [idx, a, k_count, shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
          // gx[o, idx[k], :] += g[o, k, :]. Threads own disjoint ranges of (o, inner) lanes,
          // so repeated indices add into one row on one thread only.
          Tensor gx = zeros(shape, g.dtype());
          const Tensor gc = g.is_contiguous() ? g : copy_contiguous(g);
          PW_DISPATCH(g.dtype(), [&] {
            const scalar_t* pg = gc.data<scalar_t>();
            scalar_t* px = gx.data<scalar_t>();
            parallel_for(a.outer * a.inner, kParallelGrain / std::max<std::int64_t>(k_count, 1) + 1,
                         [&](std::int64_t b, std::int64_t e) {
                           for (std::int64_t o = b / a.inner; o * a.inner < e; ++o) {
                             const std::int64_t i0 = std::max(b - o * a.inner, std::int64_t{0});
                             const std::int64_t i1 = std::min(e - o * a.inner, a.inner);
                             for (std::int64_t k = 0; k < k_count; ++k) {
                               scalar_t* dst =
                                   px + (o * a.n + idx[static_cast<std::size_t>(k)]) * a.inner;
                               const scalar_t* src = pg + (o * k_count + k) * a.inner;
                               for (std::int64_t i = i0; i < i1; ++i) dst[i] += src[i];
                             }
                           }
                         });
          });
          return {gx};
        });
  return out;
}

Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index) {
  PW_CHECK(x.dim() > 0, "[gather] cannot gather from a 0-dim tensor");
  const auto d = static_cast<std::size_t>(wrap_dim(dim, x.dim(), "gather"));
  bool fits = index.dim() == x.dim();
  for (std::size_t k = 0; fits && k < d; ++k) fits = index.shape()[k] <= x.shape()[k];
  for (std::size_t k = d + 1; fits && k < x.shape().size(); ++k)
    fits = index.shape()[k] <= x.shape()[k];
  PW_CHECK(fits, "[gather] index of shape {} does not fit input of shape {} outside dim {}",
           shape_str(index.shape()), shape_str(x.shape()), d);
  const auto idx = read_indices("gather", index, static_cast<std::int64_t>(d), x.shape()[d]);
  const Shape& shape = index.shape();
  Tensor out = empty(shape, x.dtype());
  // x's strides with `dim` zeroed: the loop supplies the other coordinates, idx the one on dim.
  Shape x_strides = x.strides();
  const std::int64_t x_dim_stride = x_strides[d];
  x_strides[d] = 0;
  PW_DISPATCH(x.dtype(), [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    const std::int64_t* pi = idx.data();  // row-major like out, so out's offsets index it
    strided_loop<2>(shape, {out.strides(), x_strides},
                    [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                        const std::array<std::int64_t, 2>& s) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        const std::int64_t o = off[0] + i * s[0];
                        po[o] = px[off[1] + i * s[1] + pi[o] * x_dim_stride];
                      }
                    });
  });
  if (needs_grad({x}))
    record(
        "gather", out, {x},
        [idx, d, x_shape = x.shape(), shape](const Tensor& g, const Node&) -> std::vector<Tensor> {
          // Scatter-add gx[..., idx, ...] += g. `dim` is moved innermost, so every row the
          // strided loop hands to one thread holds all positions that differ only along dim:
          // the only ones that can hit the same element of gx (its other coordinates are
          // distinct). dim never merges with an outer dim, as its stride in gx is zeroed.
          Tensor gx = zeros(x_shape, g.dtype());
          Shape gx_strides = gx.strides();
          const std::int64_t gx_dim_stride = gx_strides[d];
          gx_strides[d] = 0;
          Shape order;
          for (std::size_t k = 0; k < shape.size(); ++k)
            if (k != d) order.push_back(static_cast<std::int64_t>(k));
          order.push_back(static_cast<std::int64_t>(d));
          auto permuted = [&](const Shape& v) {
            Shape r;
            for (auto k : order) r.push_back(v[static_cast<std::size_t>(k)]);
            return r;
          };
          PW_DISPATCH(g.dtype(), [&] {
            const scalar_t* pg = g.data<scalar_t>();
            scalar_t* px = gx.data<scalar_t>();
            const std::int64_t* pi = idx.data();
            strided_loop<3>(
                permuted(shape),
                {permuted(contiguous_strides(shape)), permuted(g.strides()), permuted(gx_strides)},
                [&](const std::array<std::int64_t, 3>& off, std::int64_t n,
                    const std::array<std::int64_t, 3>& s) {
                  for (std::int64_t i = 0; i < n; ++i)
                    px[off[2] + i * s[2] + pi[off[0] + i * s[0]] * gx_dim_stride] +=
                        pg[off[1] + i * s[1]];
                });
          });
          return {gx};
        });
  return out;
}

}  // namespace pw
