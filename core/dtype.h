// Scalar types. Kernels are templates on the scalar type; PW_DISPATCH picks one at run time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/bfloat16.h"
#include "core/error.h"

namespace pw {

// BFloat16 is a storage type: GEMM operands under autocast, saved activations, weights on
// disk. Arithmetic ops compute in float32 or float64 and reject it (PW_DISPATCH).
enum class DType : std::uint8_t { Float32, Float64, BFloat16 };

constexpr std::size_t dtype_size(DType t) {
  return t == DType::Float32 ? 4 : t == DType::Float64 ? 8 : 2;
}
constexpr std::string_view dtype_name(DType t) {
  return t == DType::Float32 ? "float32" : t == DType::Float64 ? "float64" : "bfloat16";
}

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}
template <>
constexpr DType dtype_of<bfloat16>() {
  return DType::BFloat16;
}

}  // namespace pw

// Runs the lambda-like body with `scalar_t` bound to the C++ type of `dtype` (float or double);
// a bfloat16 tensor is an error here: arithmetic needs a cast to float32 first.
#define PW_DISPATCH(dtype, ...)                                                                   \
  [&] {                                                                                           \
    if ((dtype) == ::pw::DType::Float32) {                                                        \
      using scalar_t = float;                                                                     \
      return __VA_ARGS__();                                                                       \
    } else {                                                                                      \
      PW_CHECK((dtype) == ::pw::DType::Float64,                                                   \
               "this op computes in float32 or float64, not bfloat16: cast with to(x, float32)"); \
      using scalar_t = double;                                                                    \
      return __VA_ARGS__();                                                                       \
    }                                                                                             \
  }()

// PW_DISPATCH over every dtype, bfloat16 included: for copies and conversions only.
#define PW_DISPATCH_ALL(dtype, ...)         \
  [&] {                                     \
    if ((dtype) == ::pw::DType::BFloat16) { \
      using scalar_t = ::pw::bfloat16;      \
      return __VA_ARGS__();                 \
    }                                       \
    return PW_DISPATCH(dtype, __VA_ARGS__); \
  }()
