// Branch-free float exp and erf that GCC auto-vectorises (glibc's expf/erff are scalar calls
// without -ffast-math, and they dominated softmax, attention and GELU), and row reductions on
// explicit vectors. Double overloads use the C library, so float64 gradient checks see libm's
// values.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace pw::fast {

// exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (Cody-Waite
// split of ln 2), exp(r) by Cephes' degree-6 polynomial: about 2 ulp over the float range.
// Underflows to exactly 0 below -87.3 (so exp(-inf) = 0), saturates at 88.7 and keeps NaN.
// The clamps are min/max (one instruction each), the underflow one select. NaN is kept by xc
// (std::max(NaN, c) is NaN) and travels through r; n comes from xn, where the operands are swapped
// so that NaN clamps to -87.3 instead: converting NaN to an int is undefined behaviour.
inline float exp(float x) {
  const float xc = std::min(std::max(x, -87.3f), 88.7f);
  const float xn = std::min(88.7f, std::max(-87.3f, x));
  const float n = std::floor(xn * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
  const float e = er * two_n;
  return x < -87.3f ? 0.0f : e;
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

// ---- row reductions on explicit vectors ----
// Without -ffast-math GCC may not reassociate a running sum, so it vectorises a reduction loop
// only through idioms that break with the vector width (and a running max not at all). Vec<T>
// is 64 bytes of T in GCC/Clang vector extensions: one zmm register with AVX-512, two ymm with
// AVX2. Vectors pass by reference only: by value a 64-byte vector changes the calling
// convention on targets without AVX-512 (GCC's -Wpsabi).
template <typename T>
struct VecOf {
  typedef T type __attribute__((vector_size(64)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
inline constexpr std::int64_t kLanes = 64 / sizeof(T);

template <typename T>
void load(Vec<T>& v, const T* p) {
  std::memcpy(&v, p, sizeof v);
}

// Folds the lanes of a Vec<T> pairwise with op (halves, then quarters, then scalars).
template <typename V, typename Op>
auto fold_lanes(const V& v, Op op) {
  using T = std::remove_cvref_t<decltype(v[0])>;
  static_assert(sizeof(V) == 64);
#if defined(__clang__) || __GNUC__ >= 12
  if constexpr (kLanes<T> == 16) {
    const auto h = op(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7),
                      __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
    const auto q =
        op(__builtin_shufflevector(h, h, 0, 1, 2, 3), __builtin_shufflevector(h, h, 4, 5, 6, 7));
    return op(op(q[0], q[2]), op(q[1], q[3]));
  } else {
    const auto h =
        op(__builtin_shufflevector(v, v, 0, 1, 2, 3), __builtin_shufflevector(v, v, 4, 5, 6, 7));
    return op(op(h[0], h[2]), op(h[1], h[3]));
  }
#else
  T r = v[0];
  for (std::int64_t j = 1; j < kLanes<T>; ++j) r = op(r, T(v[j]));
  return r;
#endif
}

struct Plus {
  template <typename V>
  V operator()(const V& a, const V& b) const {
    return a + b;
  }
};
struct Max {
  template <typename V>
  V operator()(const V& a, const V& b) const {
    return a > b ? a : b;
  }
};

template <typename T>
T max(const T* x, std::int64_t n) {
  T m = -INFINITY;
  std::int64_t i = 0;
  if (n >= kLanes<T>) {
    Vec<T> acc, v;
    load(acc, x);
    for (i = kLanes<T>; i + kLanes<T> <= n; i += kLanes<T>) {
      load(v, x + i);
      acc = acc > v ? acc : v;
    }
    m = fold_lanes(acc, Max{});
  }
  for (; i < n; ++i) m = m > x[i] ? m : x[i];
  return m;
}

// sum, dot and sq_dev_sum keep two vector accumulators: a row's adds form two dependency
// chains instead of one.
template <typename T>
T sum(const T* x, std::int64_t n) {
  constexpr std::int64_t L = kLanes<T>;
  Vec<T> a0{}, a1{}, v, u;
  std::int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    load(v, x + i);
    load(u, x + i + L);
    a0 += v;
    a1 += u;
  }
  if (i + L <= n) {
    load(v, x + i);
    a0 += v;
    i += L;
  }
  a0 += a1;
  T s = fold_lanes(a0, Plus{});
  for (; i < n; ++i) s += x[i];
  return s;
}

template <typename T>
T dot(const T* x, const T* y, std::int64_t n) {
  constexpr std::int64_t L = kLanes<T>;
  Vec<T> a0{}, a1{}, v, u, w, z;
  std::int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    load(v, x + i);
    load(w, y + i);
    load(u, x + i + L);
    load(z, y + i + L);
    a0 += v * w;
    a1 += u * z;
  }
  if (i + L <= n) {
    load(v, x + i);
    load(w, y + i);
    a0 += v * w;
    i += L;
  }
  a0 += a1;
  T s = fold_lanes(a0, Plus{});
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

// sum (x - mu)^2, the centred sum of squares of a row.
template <typename T>
T sq_dev_sum(const T* x, T mu, std::int64_t n) {
  constexpr std::int64_t L = kLanes<T>;
  Vec<T> a0{}, a1{}, v, u;
  std::int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    load(v, x + i);
    load(u, x + i + L);
    v -= mu;
    u -= mu;
    a0 += v * v;
    a1 += u * u;
  }
  if (i + L <= n) {
    load(v, x + i);
    v -= mu;
    a0 += v * v;
    i += L;
  }
  a0 += a1;
  T s = fold_lanes(a0, Plus{});
  for (; i < n; ++i) s += (x[i] - mu) * (x[i] - mu);
  return s;
}

// y = exp(x - shift) elementwise, returning the sum of y (a softmax row's numerator); y may be x.
template <typename T>
T exp_shifted(const T* x, T shift, T* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = fast::exp(x[i] - shift);
  return sum(y, n);
}

}  // namespace pw::fast
