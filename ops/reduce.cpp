#include "ops/reduce.h"

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/elementwise.h"
#include "ops/kernels.h"
#include "ops/shape.h"

namespace pw {
namespace {

// Which dims a reduction removes, and the shapes around it.
struct ReducePlan {
  std::vector<bool> reduced;  // per input dim
  Shape keep_shape;           // output shape with reduced dims kept as 1
  Shape out_shape;            // output shape honouring keepdim
  std::int64_t count = 1;     // elements reduced into each output
};

ReducePlan plan_reduction(const Tensor& x, const Dims& dims, bool keepdim, const char* op) {
  ReducePlan p;
  const std::int64_t rank = x.dim();
  p.reduced.assign(static_cast<std::size_t>(rank), dims.empty());
  for (auto d : dims) {
    const auto w = static_cast<std::size_t>(wrap_dim(d, rank, op));
    PW_CHECK(!p.reduced[w] || dims.empty(), "[{}] dim {} appears twice in the reduction dims", op, d);
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

// out[o] = finish(fold over the reduced elements of x), parallel over outputs. The reduced
// sub-space is walked with an odometer whose innermost dim is the last reduced dim.
template <typename T, typename Acc, typename Step, typename Finish>
Tensor reduce_kernel(const Tensor& x, const ReducePlan& p, Acc init, Step step, Finish finish) {
  Tensor out = empty(p.out_shape, x.dtype());
  Shape kdims, kstrides, rdims, rstrides;
  for (std::size_t d = 0; d < p.reduced.size(); ++d) {
    (p.reduced[d] ? rdims : kdims).push_back(x.shape()[d]);
    (p.reduced[d] ? rstrides : kstrides).push_back(x.strides()[d]);
  }
  if (rdims.empty()) rdims.push_back(1), rstrides.push_back(0);
  const T* px = x.data<T>();
  T* po = out.data<T>();
  const std::int64_t n_out = numel_of(kdims), n_red = numel_of(rdims);
  const std::int64_t inner = rdims.back(), inner_stride = rstrides.back();
  const std::size_t rr = rdims.size();
  const Shape kcontig = contiguous_strides(kdims);
  parallel_for(n_out, std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(n_red, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 Shape ctr(rr, 0);
                 for (std::int64_t o = b; o < e; ++o) {
                   std::int64_t base = 0;
                   for (std::size_t d = 0; d < kdims.size(); ++d) base += (o / kcontig[d]) % kdims[d] * kstrides[d];
                   Acc acc = init;
                   std::fill(ctr.begin(), ctr.end(), 0);
                   std::int64_t off = base;
                   for (std::int64_t r = 0; r < n_red; r += inner) {
                     const T* row = px + off;
                     if (inner_stride == 1) {
                       for (std::int64_t i = 0; i < inner; ++i) acc = step(acc, row[i]);
                     } else {
                       for (std::int64_t i = 0; i < inner; ++i) acc = step(acc, row[i * inner_stride]);
                     }
                     for (std::size_t d = rr - 1; d-- > 0;) {  // advance the outer reduced dims
                       off += rstrides[d];
                       if (++ctr[d] < rdims[d]) break;
                       off -= rstrides[d] * rdims[d];
                       ctr[d] = 0;
                     }
                   }
                   po[o] = finish(acc);
                 }
               });
  return out;
}

// Broadcasts a reduced tensor (shaped out_shape) back against x's shape.
Tensor expand_back(const Tensor& t, const ReducePlan& p, const Shape& x_shape) {
  return expand(reshape(t, p.keep_shape), x_shape);
}

Tensor sum_impl(const Tensor& x, const ReducePlan& p) {
  return PW_DISPATCH(x.dtype(), [&] {
    return reduce_kernel<scalar_t>(x, p, 0.0, [](double acc, scalar_t v) { return acc + v; },
                                   [](double acc) { return static_cast<scalar_t>(acc); });
  });
}

Tensor extremum(const char* name, const Tensor& x, const Dims& dims, bool keepdim, bool is_max) {
  PW_CHECK(x.numel() > 0, "[{}] cannot reduce an empty tensor of shape {}", name, shape_str(x.shape()));
  ReducePlan p = plan_reduction(x, dims, keepdim, name);
  Tensor out = PW_DISPATCH(x.dtype(), [&] {
    const scalar_t init = is_max ? -std::numeric_limits<scalar_t>::infinity()
                                 : std::numeric_limits<scalar_t>::infinity();
    return reduce_kernel<scalar_t>(
        x, p, init,
        [is_max](scalar_t acc, scalar_t v) {
          if (std::isnan(v) || std::isnan(acc)) return std::numeric_limits<scalar_t>::quiet_NaN();
          return is_max ? std::max(acc, v) : std::min(acc, v);
        },
        [](scalar_t acc) { return acc; });
  });
  if (needs_grad({x}))
    record(name, out, {x}, [sx = SavedTensor(x), so = SavedTensor(out), p](const Tensor& g, const Node&) -> std::vector<Tensor> {
      const Tensor xv = sx.get();
      const Tensor mask = eq(xv, expand_back(so.get(), p, xv.shape()));
      const Tensor ties = sum_impl(mask, p);  // how many elements share the extremum
      return {mul(mask, expand_back(div(g, ties), p, xv.shape()))};
    });
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) {
  ReducePlan p = plan_reduction(x, dims, keepdim, "sum");
  Tensor out = sum_impl(x, p);
  if (needs_grad({x}))
    record("sum", out, {x}, [p, shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
      return {expand_back(g, p, shape)};
    });
  return out;
}

Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  ReducePlan p = plan_reduction(x, dims, keepdim, "mean");
  const double scale = 1.0 / static_cast<double>(p.count);
  Tensor out = PW_DISPATCH(x.dtype(), [&] {
    return reduce_kernel<scalar_t>(x, p, 0.0, [](double acc, scalar_t v) { return acc + v; },
                                   [scale](double acc) { return static_cast<scalar_t>(acc * scale); });
  });
  if (needs_grad({x}))
    record("mean", out, {x}, [p, scale, shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
      return {expand_back(mul(g, scale), p, shape)};
    });
  return out;
}

Tensor max(const Tensor& x, const Dims& dims, bool keepdim) { return extremum("max", x, dims, keepdim, true); }
Tensor min(const Tensor& x, const Dims& dims, bool keepdim) { return extremum("min", x, dims, keepdim, false); }

Tensor var(const Tensor& x, const Dims& dims, std::int64_t correction, bool keepdim) {
  ReducePlan p = plan_reduction(x, dims, keepdim, "var");
  const double denom = static_cast<double>(p.count - correction);
  PW_CHECK(denom > 0, "[var] {} elements with correction {} leave no degrees of freedom", p.count, correction);
  Tensor centered;
  {
    NoGradGuard no_grad;
    centered = sub(x, mean(x, dims, true));
  }
  Tensor out = PW_DISPATCH(x.dtype(), [&] {
    return reduce_kernel<scalar_t>(centered, p, 0.0, [](double acc, scalar_t v) { return acc + double(v) * v; },
                                   [denom](double acc) { return static_cast<scalar_t>(acc / denom); });
  });
  if (needs_grad({x}))
    record("var", out, {x}, [sc = SavedTensor(centered), p, denom](const Tensor& g, const Node&) -> std::vector<Tensor> {
      const Tensor c = sc.get();
      return {mul(c, expand_back(mul(g, 2.0 / denom), p, c.shape()))};  // 2 (x - mean) / (n - c)
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
    m = where(eq(abs(m), full({}, std::numeric_limits<double>::infinity(), m.dtype())), zeros({}, m.dtype()), m);
    Tensor s = sum_impl(exp(sub(x, m)), p);
    out = add(log(s), p.out_shape == p.keep_shape ? m : reshape(m, p.out_shape));
  }
  if (needs_grad({x}))
    record("logsumexp", out, {x}, [sx = SavedTensor(x), so = SavedTensor(out), p](const Tensor& g, const Node&) -> std::vector<Tensor> {
      const Tensor xv = sx.get();
      const Tensor softmax = exp(sub(xv, expand_back(so.get(), p, xv.shape())));
      return {mul(softmax, expand_back(g, p, xv.shape()))};
    });
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const std::int64_t lead = g.dim() - static_cast<std::int64_t>(shape.size());
  PW_CHECK(lead >= 0, "[sum_to] cannot sum shape {} to shape {}", shape_str(g.shape()), shape_str(shape));
  Dims dims;
  for (std::int64_t d = 0; d < g.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else {
      const auto want = shape[static_cast<std::size_t>(d - lead)];
      PW_CHECK(want == g.shape()[d] || want == 1, "[sum_to] cannot sum shape {} to shape {}",
               shape_str(g.shape()), shape_str(shape));
      if (want == 1 && g.shape()[d] != 1) dims.push_back(d);
    }
  }
  if (dims.empty()) return reshape(g, shape);
  return reshape(sum(g, dims, true), shape);
}

}  // namespace pw
