// Reductions over any set of dims (empty dims = all dims), with keepdim (ops/reduce.cpp, on
// the kernel of ops/reduce_kernel.h). sum_to, which undoes broadcasting, is in ops/broadcast.h.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace pw {

using Dims = std::vector<std::int64_t>;

Tensor sum(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
// Max/min values (NaN if the reduced elements hold one); the gradient goes to the
// arg-max/min (split evenly between ties).
Tensor max(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
// Variance with Bessel's correction by default (torch.var's correction=1).
Tensor var(const Tensor& x, const Dims& dims = {}, std::int64_t correction = 1,
           bool keepdim = false);
// log(sum(exp(x))) computed with the max subtracted first.
Tensor logsumexp(const Tensor& x, const Dims& dims = {}, bool keepdim = false);

}  // namespace pw
