// Shapes and strides: small helpers shared by the tensor core and every op.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pw {

using Shape = std::vector<std::int64_t>;

// Product of the extents (1 for a scalar shape); throws when it does not fit in int64 (a shape
// read from a file can claim any extents).
std::int64_t numel_of(const Shape& shape);
// Row-major strides, in elements; throws like numel_of.
Shape contiguous_strides(const Shape& shape);
// a * b for sizes and counts; throws pw::Error naming `what` when the product overflows int64.
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* what);
// "(2,3,4)", the form every error message uses.
std::string shape_str(const Shape& shape);
// NumPy broadcasting of two shapes; throws naming `op` when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Maps a possibly negative dim into [0, rank); throws naming `op` when out of range.
std::int64_t wrap_dim(std::int64_t dim, std::int64_t rank, const char* op);

}  // namespace pw
