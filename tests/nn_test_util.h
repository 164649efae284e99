// Helpers shared by the nn-op tests: random inputs and elementwise comparison.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace pw::testing {

// Largest |a - b| over all elements (shapes must match).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  PW_CHECK(a.shape() == b.shape(), "[max_abs_diff] shapes {} and {} differ", shape_str(a.shape()),
           shape_str(b.shape()));
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double m = 0;
  for (std::size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

// Largest |a| over all elements.
inline double max_abs(const Tensor& a) {
  double m = 0;
  for (double v : a.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

// A float64 leaf with standard-normal values that requires grad (for gradcheck).
inline Tensor leaf64(const Shape& shape, std::uint64_t seed) {
  Generator g(seed);
  return randn(shape, g, DType::Float64).requires_grad_();
}

// A random leaf of the given dtype that requires grad.
inline Tensor leaf(const Shape& shape, std::uint64_t seed, DType dt) {
  Generator g(seed);
  return randn(shape, g, dt).requires_grad_();
}

// The output of fn(inputs) and the gradients of every input after backward with a fixed
// pseudo-random upstream gradient (so that each output element gets a different weight).
struct OutputAndGrads {
  Tensor output;
  std::vector<Tensor> grads;
};
inline OutputAndGrads run_with_grads(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                     const std::vector<Tensor>& inputs, std::uint64_t seed = 99) {
  for (const auto& t : inputs)
    if (t.defined()) t.zero_grad();
  Tensor y = fn(inputs);
  Generator g(seed);
  y.backward(randn(y.shape(), g, y.dtype()));
  OutputAndGrads r{y.detach(), {}};
  for (const auto& t : inputs) r.grads.push_back(t.defined() ? t.grad() : Tensor());
  return r;
}

// Checks that two (output, gradients) results agree within tol, naming the failing entry.
inline std::string compare(const OutputAndGrads& a, const OutputAndGrads& b, double tol) {
  if (max_abs_diff(a.output, b.output) > tol)
    return fmt::format("outputs differ by {}", max_abs_diff(a.output, b.output));
  for (std::size_t i = 0; i < a.grads.size(); ++i) {
    if (a.grads[i].defined() != b.grads[i].defined()) return fmt::format("grad {} defined once", i);
    if (a.grads[i].defined() && max_abs_diff(a.grads[i], b.grads[i]) > tol)
      return fmt::format("grad {} differs by {}", i, max_abs_diff(a.grads[i], b.grads[i]));
  }
  return "";
}

}  // namespace pw::testing
