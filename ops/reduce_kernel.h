// The reduction kernel behind sum, mean, var, max, min (ops/reduce.cpp) and sum_to
// (ops/broadcast.cpp): a fold over any set of dims of a strided tensor, parallel over outputs.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"

namespace pw::kernels {

// Which dims a reduction removes, and the shapes around it.
struct ReducePlan {
  std::vector<bool> reduced;  // per input dim
  Shape keep_shape;           // output shape with reduced dims kept as 1
  Shape out_shape;            // output shape honouring keepdim
  std::int64_t count = 1;     // elements reduced into each output
};

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

}  // namespace pw::kernels
