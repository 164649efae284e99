// Broadcasting in one place: expanding a tensor to a larger shape (a view with stride 0 on the
// broadcast dims), summing a broadcast gradient back (PyTorch's sum_to), and the strides with
// which the kernels read a broadcast operand. expand's backward is sum_to and sum_to's is
// expand, so both live in ops/broadcast.cpp, which needs no other op family. The shape rule
// itself (NumPy's) is broadcast_shapes in core/shape.h.
#pragma once
#include "core/tensor.h"

namespace pw {

// Broadcasts size-1 dims (and new leading dims) to `shape` with stride 0; -1 keeps a size.
Tensor expand(const Tensor& x, const Shape& shape);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
// Sums a broadcast gradient back down to `shape` (PyTorch's sum_to): over the leading dims
// that `shape` lacks and over the dims where `shape` has 1. g itself when the shapes agree.
Tensor sum_to(const Tensor& g, const Shape& shape);

namespace kernels {
// Strides of `t` viewed with `shape` (NumPy broadcasting: 0 on broadcast dims).
Shape broadcast_strides(const Tensor& t, const Shape& shape);
}  // namespace kernels

}  // namespace pw
