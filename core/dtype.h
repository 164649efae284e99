// Scalar types. Kernels are templates on the scalar type; PW_DISPATCH picks one at run time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"

namespace pw {

enum class DType : std::uint8_t { Float32, Float64 };

constexpr std::size_t dtype_size(DType t) {
  return t == DType::Float32 ? 4 : 8;
}
constexpr std::string_view dtype_name(DType t) {
  return t == DType::Float32 ? "float32" : "float64";
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

}  // namespace pw

// Runs the lambda-like body with `scalar_t` bound to the C++ type of `dtype`.
#define PW_DISPATCH(dtype, ...)            \
  [&] {                                    \
    if ((dtype) == ::pw::DType::Float32) { \
      using scalar_t = float;              \
      return __VA_ARGS__();                \
    } else {                               \
      using scalar_t = double;             \
      return __VA_ARGS__();                \
    }                                      \
  }()
