// The differentiable elementwise ops as one table, in the manner of PyTorch's derivatives.yaml:
// each entry holds an op's forward and, per tensor operand, its gradient formula. One driver
// (apply) runs the forward, saves what the formulas read and records the node; the functions of
// ops/elementwise.h are one line each on top of it, and tests/test_ops_elementwise.cpp walks
// elementwise_ops() with gradcheck, so a new entry is checked without a test of its own.
#pragma once
#include <span>

#include "core/tensor.h"

namespace pw {

// What an entry's gradient formulas read, and what the driver keeps alive for backward.
struct ElementwiseSaved {
  Tensor a, b, out;  // undefined unless the entry saves them
  double s = 0;      // the scalar operand of a scalar form
};

// Where gradcheck draws an entry's operands: some ops have no derivative (or no value) at 0.
enum class GradDomain { Any, Positive, AwayFromZero };

struct ElementwiseOp {
  const char* name;      // the node's name, as PyTorch's (pow for both pow forms)
  bool scalar = false;   // one tensor and a double s: add(a, s), rsub(s, a), pow(a, p), ...
  bool saves_a = false;  // what the gradient formulas read
  bool saves_b = false;
  bool saves_out = false;
  GradDomain domain = GradDomain::Any;
  // The value, without a graph; b is undefined and s unused where the op does not take them.
  Tensor (*forward)(const Tensor& a, const Tensor& b, double s);
  // d(out)/d(a) and d(out)/d(b) applied to the output's gradient g, at the output's shape (the
  // driver sums each to its operand's shape); grad_b is null for one tensor operand.
  Tensor (*grad_a)(const Tensor& g, const ElementwiseSaved& saved);
  Tensor (*grad_b)(const Tensor& g, const ElementwiseSaved& saved) = nullptr;
};

// Runs `op` on its operands and records its node when one of them requires grad.
Tensor apply(const ElementwiseOp& op, const Tensor& a, const Tensor& b = Tensor(), double s = 0);

// Every entry of the table.
std::span<const ElementwiseOp* const> elementwise_ops();

}  // namespace pw
