// Joins, splits and padding (ops/join.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace pw {

// Joins tensors along an existing dim (cat) or a new one (stack).
Tensor cat(const std::vector<Tensor>& xs, std::int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, std::int64_t dim);
// Pieces of `size` elements along dim (the last may be smaller); chunk makes `chunks` pieces.
std::vector<Tensor> split(const Tensor& x, std::int64_t size, std::int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, std::int64_t dim);
// Constant padding: `pads` holds (before, after) pairs starting from the last dim, as F.pad.
Tensor pad(const Tensor& x, const std::vector<std::int64_t>& pads, double value = 0.0);

}  // namespace pw
