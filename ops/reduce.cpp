#include "ops/reduce.h"

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "ops/broadcast.h"
#include "ops/elementwise.h"
#include "ops/kernels.h"
#include "ops/reduce_kernel.h"
#include "ops/shape.h"

namespace pw {
namespace {

using kernels::ExtremumFold;
using kernels::reduce_kernel;
using kernels::ReducePlan;
using kernels::SumFold;
using kernels::SumSquaresFold;

ReducePlan plan_reduction(const Tensor& x, const Dims& dims, bool keepdim, const char* op) {
  ReducePlan p;
  const std::int64_t rank = x.dim();
  p.reduced.assign(static_cast<std::size_t>(rank), dims.empty());
  for (auto d : dims) {
    const auto w = static_cast<std::size_t>(wrap_dim(d, rank, op));
    if (rank == 0) continue;  // a scalar accepts dim 0 / -1 and reduces nothing (as PyTorch)
    PW_CHECK(!p.reduced[w], "[{}] dim {} appears twice in the reduction dims {}", op, d,
             shape_str(dims));
    p.reduced[w] = true;
  }
  for (std::size_t d = 0; d < p.reduced.size(); ++d) {
    const auto n = x.shape()[d];
    p.keep_shape.push_back(p.reduced[d] ? 1 : n);
    if (p.reduced[d]) p.count *= n;
    if (!p.reduced[d] || keepdim) p.out_shape.push_back(p.reduced[d] ? 1 : n);
  }
  return p;
}

// Broadcasts a reduced tensor (shaped out_shape) back against x's shape.
Tensor expand_back(const Tensor& t, const ReducePlan& p, const Shape& x_shape) {
  return expand(reshape(t, p.keep_shape), x_shape);
}

Tensor sum_impl(const Tensor& x, const ReducePlan& p, double scale = 1.0) {
  return PW_DISPATCH(x.dtype(),
                     [&] { return reduce_kernel<scalar_t>(x, p, SumFold<scalar_t>{scale}); });
}

// 1 where x holds the reduced extremum (NaN counts as equal to a NaN result), else 0.
Tensor extremum_mask(const Tensor& x, const Tensor& extremum_expanded) {
  Tensor mask = empty(x.shape(), x.dtype());
  PW_DISPATCH(x.dtype(), [&] {
    kernels::map2<scalar_t>(mask, x, extremum_expanded, [](scalar_t v, scalar_t m) {
      return v == m || (std::isnan(v) && std::isnan(m)) ? scalar_t(1) : scalar_t(0);
    });
  });
  return mask;
}

Tensor extremum(const char* name, const Tensor& x, const Dims& dims, bool keepdim, bool is_max) {
  ReducePlan p = plan_reduction(x, dims, keepdim, name);
  PW_CHECK(p.count > 0, "[{}] cannot reduce over an empty dim of a tensor of shape {}", name,
           shape_str(x.shape()));
  Tensor out = PW_DISPATCH(
      x.dtype(), [&] { return reduce_kernel<scalar_t>(x, p, ExtremumFold<scalar_t>{is_max}); });
  if (needs_grad({x}))
    record(name, out, {x},
           [sx = SavedTensor(x), so = SavedTensor(out), p](const Tensor& g,
                                                           const Node&) -> std::vector<Tensor> {
             // The gradient is split evenly between ties (torch.max without dim / amax).
             const Tensor xv = sx.get();
             const Tensor mask = extremum_mask(xv, expand_back(so.get(), p, xv.shape()));
             const Tensor ties = sum_impl(mask, p);
             return {mul(mask, expand_back(div(g, ties), p, xv.shape()))};
           });
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) {
  ReducePlan p = plan_reduction(x, dims, keepdim, "sum");
  Tensor out = sum_impl(x, p);
  if (needs_grad({x}))
    record("sum", out, {x},
           [p, shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {expand_back(g, p, shape)};
           });
  return out;
}

Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  ReducePlan p = plan_reduction(x, dims, keepdim, "mean");
  const double scale = 1.0 / static_cast<double>(p.count);  // inf for an empty dim: NaN mean
  Tensor out = sum_impl(x, p, scale);
  if (needs_grad({x}))
    record("mean", out, {x},
           [p, scale, shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {expand_back(mul(g, scale), p, shape)};
           });
  return out;
}

Tensor max(const Tensor& x, const Dims& dims, bool keepdim) {
  return extremum("max", x, dims, keepdim, true);
}
Tensor min(const Tensor& x, const Dims& dims, bool keepdim) {
  return extremum("min", x, dims, keepdim, false);
}

Tensor var(const Tensor& x, const Dims& dims, std::int64_t correction, bool keepdim) {
  ReducePlan p = plan_reduction(x, dims, keepdim, "var");
  const double denom = static_cast<double>(p.count - correction);
  PW_CHECK(denom > 0, "[var] {} elements with correction {} leave no degrees of freedom", p.count,
           correction);
  Tensor centered;
  {
    NoGradGuard no_grad;
    centered = sub(x, mean(x, dims, true));
  }
  Tensor out = PW_DISPATCH(x.dtype(), [&] {
    return reduce_kernel<scalar_t>(centered, p, SumSquaresFold<scalar_t>{denom});
  });
  if (needs_grad({x}))
    record("var", out, {x},
           [sc = SavedTensor(centered), p, denom](const Tensor& g,
                                                  const Node&) -> std::vector<Tensor> {
             const Tensor c = sc.get();
             return {
                 mul(c, expand_back(mul(g, 2.0 / denom), p, c.shape()))};  // 2 (x - mean) / (n - c)
           });
  return out;
}

Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim) {
  ReducePlan p = plan_reduction(x, dims, keepdim, "logsumexp");
  Tensor out;
  {
    NoGradGuard no_grad;
    Tensor m = max(x, dims, true);
    // A row of -inf has max -inf; use 0 there so that exp(x - m) stays finite.
    m = where(eq(abs(m), full({}, std::numeric_limits<double>::infinity(), m.dtype())),
              zeros({}, m.dtype()), m);
    Tensor s = sum_impl(exp(sub(x, m)), p);
    out = add(log(s), p.out_shape == p.keep_shape ? m : reshape(m, p.out_shape));
  }
  if (needs_grad({x}))
    record("logsumexp", out, {x},
           [sx = SavedTensor(x), so = SavedTensor(out), p](const Tensor& g,
                                                           const Node&) -> std::vector<Tensor> {
             const Tensor xv = sx.get();
             const Tensor softmax = exp(sub(xv, expand_back(so.get(), p, xv.shape())));
             return {mul(softmax, expand_back(g, p, xv.shape()))};
           });
  return out;
}

}  // namespace pw
