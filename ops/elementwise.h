// Elementwise operations with NumPy broadcasting. The differentiable ones are entries of one
// table in elementwise.cpp, each with its forward and its gradient formulas (as PyTorch's
// derivatives.yaml; ops/elementwise_rules.h describes an entry); where() keeps its own rule, as
// its condition is no operand to differentiate.
#pragma once
#include "core/tensor.h"

namespace pw {

// ---- binary, broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// a ** b elementwise (gradient to b uses log(a), defined for a > 0; at a == 0 with b >= 0 both
// gradients are 0 where PyTorch defines them so).
Tensor pow(const Tensor& a, const Tensor& b);
// Elementwise max/min, NaN if either side is NaN; where a == b the gradient is split evenly,
// as PyTorch does.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// ---- with a scalar ----
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);
Tensor rdiv(double s, const Tensor& a);  // s / a
Tensor pow(const Tensor& a, double exponent);

// ---- unary ----
Tensor neg(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);

// ---- comparisons: 1.0 where true, 0.0 elsewhere, never differentiable ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
// a if cond != 0 else b, broadcasting all three; no gradient flows through cond.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- in place (not recorded; an error on tensors that take part in autograd) ----
Tensor& add_(Tensor& a, const Tensor& b, double alpha = 1.0);
Tensor& mul_(Tensor& a, double s);
Tensor& fill_(Tensor& a, double value);
Tensor& zero_(Tensor& a);

inline Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
inline Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
inline Tensor operator+(const Tensor& a, double s) {
  return add(a, s);
}
inline Tensor operator-(const Tensor& a, double s) {
  return sub(a, s);
}
inline Tensor operator*(const Tensor& a, double s) {
  return mul(a, s);
}
inline Tensor operator/(const Tensor& a, double s) {
  return div(a, s);
}
inline Tensor operator+(double s, const Tensor& a) {
  return add(a, s);
}
inline Tensor operator-(double s, const Tensor& a) {
  return rsub(s, a);
}
inline Tensor operator*(double s, const Tensor& a) {
  return mul(a, s);
}
inline Tensor operator/(double s, const Tensor& a) {
  return rdiv(s, a);
}
inline Tensor operator-(const Tensor& a) {
  return neg(a);
}

}  // namespace pw
