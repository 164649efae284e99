#include "core/shape.h"

#include <fmt/format.h>

#include "core/error.h"

namespace pw {

std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* what) {
  std::int64_t out;
  PW_CHECK(!__builtin_mul_overflow(a, b, &out), "[{}] {} x {} overflows a 64-bit count", what, a,
           b);
  return out;
}

std::int64_t numel_of(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (__builtin_mul_overflow(n, d, &n))
      fail("[numel] the element count of shape {} overflows a 64-bit count", shape_str(shape));
  }
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t s = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    if (__builtin_mul_overflow(s, shape[i], &s))
      fail("[strides] the element count of shape {} overflows a 64-bit count", shape_str(shape));
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(shape[i]);
  }
  return out + ")";
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    PW_CHECK(da == db || da == 1 || db == 1, "[{}] shapes {} and {} cannot be broadcast", op,
             shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::int64_t wrap_dim(std::int64_t dim, std::int64_t rank, const char* op) {
  const std::int64_t r = std::max<std::int64_t>(rank, 1);
  PW_CHECK(dim >= -r && dim < r, "[{}] dim {} out of range for a tensor of rank {}", op, dim, rank);
  return dim < 0 ? dim + r : dim;
}

}  // namespace pw
