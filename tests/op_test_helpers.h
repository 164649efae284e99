// Helpers shared by the op tests: float64 leaves for gradcheck, a gradcheck assertion that
// prints the mismatching entry, and a plain row-major walk used by the reference kernels.
#pragma once
#include <catch2/catch.hpp>
#include <functional>
#include <vector>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "core/tensor.h"

namespace pw::test {

// A float64 leaf that requires grad, uniform in [low, high) from a fixed seed.
inline Tensor leaf(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0) {
  Generator gen(seed);
  return rand(shape, gen, DType::Float64, low, high).requires_grad_();
}

// A leaf whose values are spread apart, so that max/min/abs/relu sit far from ties and kinks:
// a random permutation of 0.1 m + 0.03 + 0.04 u for m = k - n/2 (integer), u uniform in [0, 1).
// Neighbours differ by >= 0.06 and no value is within 0.03 of zero.
inline Tensor spread_leaf(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  const std::int64_t n = numel_of(shape);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k)
    v[static_cast<std::size_t>(k)] =
        0.1 * static_cast<double>(k - n / 2) + 0.03 + 0.04 * gen.uniform();
  for (std::int64_t k = n - 1; k > 0; --k)
    std::swap(v[static_cast<std::size_t>(k)], v[gen.randint(static_cast<std::uint64_t>(k + 1))]);
  return from_vector(v, shape).requires_grad_();
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

}  // namespace pw::test

// Checks gradcheck(fn, inputs) and reports the first mismatching Jacobian entry on failure.
#define CHECK_GRADCHECK(fn, ...)                                \
  do {                                                          \
    const auto pw_result_ = ::pw::gradcheck((fn), __VA_ARGS__); \
    INFO(pw_result_.message);                                   \
    CHECK(pw_result_.ok);                                       \
  } while (0)

namespace pw::test {

// Calls fn(index) for every index of `shape` in row-major order (the reference kernels' loop).
inline void for_each_index(const Shape& shape, const std::function<void(const Shape&)>& fn) {
  const std::int64_t n = numel_of(shape);
  Shape idx(shape.size(), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    fn(idx);
    for (std::size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace pw::test
