// Branch-free float exp and erf that GCC auto-vectorises (glibc's expf/erff are scalar calls
// without -ffast-math, and they dominated softmax, attention and GELU). Double overloads use
// the C library, so float64 gradient checks see libm's values.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace pw::fast {

// exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (Cody-Waite
// split of ln 2), exp(r) by Cephes' degree-6 polynomial: about 2 ulp over the float range.
// Underflows to exactly 0 below -87.3 (so exp(-inf) = 0) and saturates at 88.7.
inline float exp(float x) {
  float xc = x < -87.3f ? -87.3f : x;
  xc = xc < 88.7f ? xc : 88.7f;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
  return x < -87.3f ? 0.0f : er * two_n;
}
inline double exp(double x) {
  return std::exp(x);
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7, the formula PyTorch's
// vectorised CPU erf uses): erf|x| = 1 - t (a1 + t (a2 + ...)) exp(-x^2), t = 1 / (1 + p|x|).
inline float erf(float x) {
  const float ax = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * ax);
  float y = 1.061405429f;
  y = y * t - 1.453152027f;
  y = y * t + 1.421413741f;
  y = y * t - 0.284496736f;
  y = y * t + 0.254829592f;
  const float e = 1.0f - y * t * fast::exp(-ax * ax);
  return std::copysign(e, x);
}
inline double erf(double x) {
  return std::erf(x);
}

// tanh(x) = 1 - 2 / (exp(2x) + 1), exact limits +-1 at large |x|.
inline float tanh(float x) {
  return 1.0f - 2.0f / (fast::exp(2.0f * x) + 1.0f);
}
inline double tanh(double x) {
  return std::tanh(x);
}

// Row reductions with 8 independent accumulators, a pattern GCC turns into one vector register
// without -ffast-math (a single running sum is a serial dependency chain it may not reorder).
template <typename T>
T max(const T* x, std::int64_t n) {
  T acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = -INFINITY;
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] = acc[j] > x[i + j] ? acc[j] : x[i + j];
  for (; i < n; ++i) acc[0] = acc[0] > x[i] ? acc[0] : x[i];
  T m = acc[0];
  for (int j = 1; j < 8; ++j) m = m > acc[j] ? m : acc[j];
  return m;
}

template <typename T>
T sum(const T* x, std::int64_t n) {
  T acc[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j];
  for (; i < n; ++i) acc[0] += x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
T dot(const T* x, const T* y, std::int64_t n) {
  T acc[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * y[i + j];
  for (; i < n; ++i) acc[0] += x[i] * y[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// sum (x - mu)^2, the centred sum of squares of a row.
template <typename T>
T sq_dev_sum(const T* x, T mu, std::int64_t n) {
  T acc[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += (x[i + j] - mu) * (x[i + j] - mu);
  for (; i < n; ++i) acc[0] += (x[i] - mu) * (x[i] - mu);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// y = exp(x - shift) elementwise, returning the sum of y (a softmax row's numerator).
template <typename T>
T exp_shifted(const T* x, T shift, T* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = fast::exp(x[i] - shift);
  return sum(y, n);
}

}  // namespace pw::fast
