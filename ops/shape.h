// Shape operations. Views (reshape of a contiguous tensor, permute, transpose, slice, squeeze,
// unsqueeze) only rewrite shape and strides over the same storage; expand is in ops/broadcast.h,
// joins in ops/join.h, integer indexing in ops/index.h.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace pw {

// Same values in a new shape (one dim may be -1): a view when the strides allow, else a copy.
Tensor reshape(const Tensor& x, const Shape& shape);
// Like reshape but never copies: an error when x's strides do not allow a view.
Tensor view(const Tensor& x, const Shape& shape);
// Merges dims start..end (inclusive) into one.
Tensor flatten(const Tensor& x, std::int64_t start_dim = 0, std::int64_t end_dim = -1);
Tensor permute(const Tensor& x, const Shape& order);
Tensor transpose(const Tensor& x, std::int64_t dim0, std::int64_t dim1);
// Elements start, start+step, ... below stop along dim (negative start/stop count from the end).
Tensor slice(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t stop,
             std::int64_t step = 1);
// Removes all size-1 dims, or only `dim` when it has size 1.
Tensor squeeze(const Tensor& x);
Tensor squeeze(const Tensor& x, std::int64_t dim);
Tensor unsqueeze(const Tensor& x, std::int64_t dim);
// x itself when contiguous, else a contiguous copy.
Tensor contiguous(const Tensor& x);
// True when x (B, C, H, W) is a view of dense (B, H, W, C) memory (channels-last), as conv2d
// returns; size-1 dims may have any stride.
bool is_channels_last(const Tensor& x);
// A contiguous copy that autograd sees as the identity.
Tensor clone(const Tensor& x);
// Converts to another dtype (differentiable; the gradient is converted back); float32 ->
// bfloat16 rounds to nearest even. x itself when it already has that dtype.
Tensor to(const Tensor& x, DType dtype);

}  // namespace pw
