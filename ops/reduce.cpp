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

// A fold over the reduced elements: init is the identity of combine; step adds one element;
// combine merges two partial folds (the kernels keep several independent partials so that the
// additions do not wait on each other); finish turns the fold into the output value.
template <typename T>
struct SumFold {
  using Acc = double;  // float32 sums accumulate in double
  double scale = 1.0;  // mean: 1/count
  Acc init() const { return 0.0; }
  Acc step(Acc a, T v) const { return a + static_cast<Acc>(v); }
  Acc combine(Acc a, Acc b) const { return a + b; }
  T finish(Acc a) const { return static_cast<T>(a * scale); }
};

// sum(v^2) / denom: the variance of an already centred tensor.
template <typename T>
struct SumSquaresFold {
  using Acc = double;
  double denom = 1.0;
  Acc init() const { return 0.0; }
  Acc step(Acc a, T v) const { return a + static_cast<Acc>(v) * static_cast<Acc>(v); }
  Acc combine(Acc a, Acc b) const { return a + b; }
  T finish(Acc a) const { return static_cast<T>(a / denom); }
};

// max (or min) that propagates NaN: once a NaN is seen the fold stays NaN (torch.max).
template <typename T>
struct ExtremumFold {
  using Acc = T;
  bool is_max = true;
  Acc init() const {
    return is_max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
  }
  Acc step(Acc a, T v) const { return (is_max ? v > a : v < a) || std::isnan(v) ? v : a; }
  Acc combine(Acc a, Acc b) const { return step(a, b); }
  T finish(Acc a) const { return a; }
};

// Calls row(offset) with the offset of the first element of every innermost row of the space
// (dims, strides), starting at `base`; the rows are dims[rank-1], walked by the caller.
template <typename F>
void for_each_row(const Shape& dims, const Shape& strides, std::int64_t base, F&& row) {
  const std::size_t outer = dims.size() - 1;
  std::int64_t rows = 1;
  for (std::size_t d = 0; d < outer; ++d) rows *= dims[d];
  Shape ctr(outer, 0);
  std::int64_t off = base;
  for (std::int64_t r = 0; r < rows; ++r) {
    row(off);
    for (std::size_t d = outer; d-- > 0;) {
      off += strides[d];
      if (++ctr[d] < dims[d]) break;
      off -= strides[d] * dims[d];
      ctr[d] = 0;
    }
  }
}

// out[o] = fold over the reduced elements of x, parallel over outputs (so no two threads
// write one output). Two walks, chosen by where x's unit stride is:
//  - lanes: the last kept dim is contiguous in x and the reduced dims are not (a column
//    reduction such as a bias gradient, sum over dim 0 of (B, D)). A block of kLanes
//    neighbouring outputs is folded together, each reduced position adding one contiguous
//    run of x, so memory is read in rows instead of one strided column per output.
//  - rows: otherwise, one output at a time; a contiguous innermost reduced row is folded
//    with kLanes independent partials.
template <typename T, typename Fold>
Tensor reduce_kernel(const Tensor& x, const ReducePlan& p, const Fold& fold) {
  using Acc = typename Fold::Acc;
  constexpr std::int64_t kLanes = 8;
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
  if (n_out == 0) return out;
  const std::int64_t inner = rdims.back(), inner_stride = rstrides.back();
  const Shape kcontig = contiguous_strides(kdims);
  // Offset in x of the kept coordinates of output o (row-major over kdims).
  auto kept_offset = [&](std::int64_t o, std::size_t ndims) {
    std::int64_t base = 0;
    for (std::size_t d = 0; d < ndims; ++d) base += (o / kcontig[d]) % kdims[d] * kstrides[d];
    return base;
  };

  const bool lanes = !kdims.empty() && kstrides.back() == 1 && kdims.back() > 1 &&
                     !(inner_stride == 1 && inner > 1);
  if (lanes) {
    constexpr std::int64_t kBlock = 64;  // outputs folded together: 64 doubles fit in registers+L1
    const std::int64_t nk = kdims.back(), nblocks = (nk + kBlock - 1) / kBlock;
    const std::int64_t n_outer = n_out / nk;
    const Shape outer_contig = contiguous_strides(Shape(kdims.begin(), kdims.end() - 1));
    const std::int64_t work = std::max<std::int64_t>(n_red * kBlock, 1);
    parallel_for(n_outer * nblocks, std::max<std::int64_t>(1, kParallelGrain / work),
                 [&](std::int64_t b, std::int64_t e) {
                   Acc acc[kBlock];
                   for (std::int64_t t = b; t < e; ++t) {
                     const std::int64_t outer = t / nblocks, j0 = t % nblocks * kBlock;
                     const std::int64_t len = std::min(kBlock, nk - j0);
                     std::int64_t base = j0;
                     for (std::size_t d = 0; d + 1 < kdims.size(); ++d)
                       base += (outer / outer_contig[d]) % kdims[d] * kstrides[d];
                     for (std::int64_t l = 0; l < len; ++l) acc[l] = fold.init();
                     for_each_row(rdims, rstrides, base, [&](std::int64_t off) {
                       for (std::int64_t i = 0; i < inner; ++i) {
                         const T* run = px + off + i * inner_stride;
                         for (std::int64_t l = 0; l < len; ++l) acc[l] = fold.step(acc[l], run[l]);
                       }
                     });
                     T* dst = po + outer * nk + j0;
                     for (std::int64_t l = 0; l < len; ++l) dst[l] = fold.finish(acc[l]);
                   }
                 });
    return out;
  }

  parallel_for(n_out, std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(n_red, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 for (std::int64_t o = b; o < e; ++o) {
                   Acc acc = fold.init();
                   for_each_row(rdims, rstrides, kept_offset(o, kdims.size()),
                                [&](std::int64_t off) {
                                  const T* row = px + off;
                                  if (inner_stride == 1) {
                                    Acc part[kLanes];
                                    for (auto& a : part) a = fold.init();
                                    std::int64_t i = 0;
                                    for (; i + kLanes <= inner; i += kLanes)
                                      for (std::int64_t l = 0; l < kLanes; ++l)
                                        part[l] = fold.step(part[l], row[i + l]);
                                    for (; i < inner; ++i) part[0] = fold.step(part[0], row[i]);
                                    for (std::int64_t l = 0; l < kLanes; ++l)
                                      acc = fold.combine(acc, part[l]);
                                  } else {
                                    for (std::int64_t i = 0; i < inner; ++i)
                                      acc = fold.step(acc, row[i * inner_stride]);
                                  }
                                });
                   po[o] = fold.finish(acc);
                 }
               });
  return out;
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

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const std::int64_t lead = g.dim() - static_cast<std::int64_t>(shape.size());
  PW_CHECK(lead >= 0, "[sum_to] cannot sum shape {} to shape {}", shape_str(g.shape()),
           shape_str(shape));
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
