#include "ops/broadcast.h"

#include "core/autograd.h"
#include "ops/reduce_kernel.h"

namespace pw {

namespace kernels {

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  const std::size_t rank = shape.size(), r = t.shape().size();
  Shape strides(rank, 0);
  for (std::size_t i = 0; i < r; ++i) {
    const std::size_t d = rank - r + i;
    strides[d] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  }
  return strides;
}

}  // namespace kernels

Tensor expand(const Tensor& x, const Shape& shape) {
  const std::size_t rank = shape.size(), r = x.shape().size();
  PW_CHECK(rank >= r, "[expand] cannot expand shape {} to {}", shape_str(x.shape()),
           shape_str(shape));
  Shape out_shape(rank), strides(rank, 0);
  for (std::size_t i = 0; i < rank; ++i) {
    const bool old = i >= rank - r;
    const std::int64_t have = old ? x.shape()[i - (rank - r)] : 1;
    PW_CHECK(shape[i] >= 0 || (shape[i] == -1 && old),
             "[expand] cannot expand shape {} to {}: -1 only keeps an existing dim, sizes must be "
             ">= 0",
             shape_str(x.shape()), shape_str(shape));
    const std::int64_t want = shape[i] == -1 ? have : shape[i];
    PW_CHECK(have == want || have == 1, "[expand] cannot expand shape {} to {}",
             shape_str(x.shape()), shape_str(shape));
    out_shape[i] = want;
    strides[i] = old && have == want ? x.strides()[i - (rank - r)] : 0;
  }
  if (out_shape == x.shape()) return x;
  Tensor out = make_view(x, out_shape, strides, x.offset());
  if (needs_grad({x}))
    record("expand", out, {x},
           [shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {sum_to(g, shape)};
           });
  return out;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  return expand(x, shape);
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const std::int64_t lead = g.dim() - static_cast<std::int64_t>(shape.size());
  PW_CHECK(lead >= 0, "[sum_to] cannot sum shape {} to shape {}", shape_str(g.shape()),
           shape_str(shape));
  // Reduce the leading dims and the dims where `shape` has 1; the kept dims are written in
  // row-major order, which is `shape`'s own.
  kernels::ReducePlan p;
  for (std::int64_t d = 0; d < g.dim(); ++d) {
    const std::int64_t n = g.shape()[d];
    const std::int64_t want = d < lead ? 1 : shape[static_cast<std::size_t>(d - lead)];
    PW_CHECK(want == n || want == 1, "[sum_to] cannot sum shape {} to shape {}",
             shape_str(g.shape()), shape_str(shape));
    const bool reduced = d < lead || (want == 1 && n != 1);
    p.reduced.push_back(reduced);
    p.keep_shape.push_back(reduced ? 1 : n);
    if (reduced) p.count *= n;
  }
  p.out_shape = shape;
  Tensor out = PW_DISPATCH(g.dtype(), [&] {
    return kernels::reduce_kernel<scalar_t>(g, p, kernels::SumFold<scalar_t>{});
  });
  if (needs_grad({g}))
    record("sum_to", out, {g},
           [from = g.shape()](const Tensor& grad, const Node&) -> std::vector<Tensor> {
             return {expand(grad, from)};
           });
  return out;
}

}  // namespace pw
