// The bfloat16 dtype: conversion bit patterns, tensors, the differentiable cast, safetensors BF16.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/autograd.h"
#include "io/safetensors.h"
#include "core/tensor.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

using namespace pw;

namespace {

std::uint16_t bits_of(float f) {
  return bfloat16(f).bits;
}
float from_bits32(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

TEST_CASE("float32 -> bfloat16 rounds to nearest, ties to even, by bit pattern", "[bf16]") {
  CHECK(bits_of(1.0f) == 0x3F80);
  CHECK(bits_of(-2.0f) == 0xC000);
  CHECK(bits_of(0.0f) == 0x0000);
  CHECK(bits_of(-0.0f) == 0x8000);
  // Below half an ulp rounds down, above rounds up.
  CHECK(bits_of(from_bits32(0x3F807FFF)) == 0x3F80);
  CHECK(bits_of(from_bits32(0x3F808001)) == 0x3F81);
  // Exact ties go to the even mantissa: 0x3F80|8000 -> 0x3F80 (even), 0x3F81|8000 -> 0x3F82.
  CHECK(bits_of(from_bits32(0x3F808000)) == 0x3F80);
  CHECK(bits_of(from_bits32(0x3F818000)) == 0x3F82);
  CHECK(bits_of(from_bits32(0xBF818000)) == 0xBF82);
  // 3.14159274 (0x40490FDB) -> 0x4049 (3.140625).
  CHECK(bits_of(3.14159274f) == 0x4049);
}

TEST_CASE("bfloat16 keeps infinities, NaN, subnormals and the largest finite value", "[bf16]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(bits_of(inf) == 0x7F80);
  CHECK(bits_of(-inf) == 0xFF80);
  // A quiet NaN and a NaN whose payload lies only in the low 16 bits both stay NaN.
  CHECK(bits_of(from_bits32(0x7FC00000)) == 0x7FC0);
  CHECK(bits_of(from_bits32(0x7F800001)) == 0x7FC0);
  CHECK(bits_of(from_bits32(0xFF800001)) == 0xFFC0);
  CHECK(std::isnan(static_cast<float>(bfloat16(std::nanf("")))));
  // The largest finite bfloat16 is 0x7F7F (3.3895314e38); float32 max rounds past it to inf.
  CHECK(static_cast<float>(bfloat16::from_bits(0x7F7F)) == from_bits32(0x7F7F0000));
  CHECK(bits_of(from_bits32(0x7F7F0000)) == 0x7F7F);
  CHECK(bits_of(from_bits32(0x7F7F7FFF)) == 0x7F7F);
  CHECK(bits_of(std::numeric_limits<float>::max()) == 0x7F80);
  // Subnormals: the smallest bfloat16 subnormal 0x0001 is 2^-133; below half of it rounds to 0.
  CHECK(bits_of(from_bits32(0x00010000)) == 0x0001);
  CHECK(static_cast<float>(bfloat16::from_bits(0x0001)) == std::ldexp(1.0f, -133));
  CHECK(bits_of(from_bits32(0x00007FFF)) == 0x0000);
  CHECK(bits_of(from_bits32(0x00008000)) == 0x0000);  // tie, to even (0)
  CHECK(bits_of(from_bits32(0x00018000)) == 0x0002);  // tie, to even (2)
  CHECK(bits_of(from_bits32(0x807FFFFF)) == 0x8080);  // the largest subnormal rounds up to normal
}

TEST_CASE("bulk conversion matches the scalar one on every rounding case", "[bf16]") {
  std::vector<float> src;
  for (std::uint32_t hi : {0x0000u, 0x0001u, 0x3F80u, 0x3F81u, 0x7F7Fu, 0x7F80u, 0xFF80u, 0x8000u})
    for (std::uint32_t lo : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu})
      src.push_back(from_bits32((hi << 16) | lo));
  std::vector<bfloat16> dst(src.size());
  float_to_bfloat16(src.data(), dst.data(), static_cast<std::int64_t>(src.size()));
  for (std::size_t i = 0; i < src.size(); ++i) CHECK(dst[i].bits == bits_of(src[i]));
  std::vector<float> back(src.size());
  bfloat16_to_float(dst.data(), back.data(), static_cast<std::int64_t>(src.size()));
  for (std::size_t i = 0; i < src.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, &back[i], 4);
    CHECK(u == std::uint32_t{dst[i].bits} << 16);
  }
}

TEST_CASE("bfloat16 tensors: creation, copies, element access and printing", "[bf16]") {
  Tensor x = tensor({1.0, 3.14159274, -1e-3, 65536.5}, {2, 2});
  Tensor b = copy_contiguous(x, DType::BFloat16);
  CHECK(b.dtype() == DType::BFloat16);
  CHECK(dtype_size(b.dtype()) == 2);
  CHECK(b.at({0, 1}) == 3.140625);
  CHECK(b.to_vector() ==
        std::vector<float>{1.0f, 3.140625f, static_cast<float>(bfloat16(-1e-3f)), 65536.0f});
  // A strided (transposed) bfloat16 view copies back to float32 element by element.
  Tensor bt = make_view(b, {2, 2}, {1, 2}, 0);
  CHECK(copy_contiguous(bt, DType::Float32).to_vector() ==
        std::vector<float>{1.0f, static_cast<float>(bfloat16(-1e-3f)), 3.140625f, 65536.0f});
  CHECK(zeros({3}, DType::BFloat16).to_vector() == std::vector<float>(3, 0.0f));
  CHECK(full({2}, 1.00390625, DType::BFloat16).to_vector() == std::vector<float>(2, 1.0f));
  CHECK(fmt::format("{}", b) ==
        "tensor([[1.0000, 3.1406],\n        [-0.0010, 65536.0000]], shape=(2,2), dtype=bfloat16)");
  // Arithmetic needs float32: the error says so.
  CHECK_THROWS_WITH(add(b, b), Catch::Contains("not bfloat16"));
}

TEST_CASE("to() casts, and its backward casts the gradient back", "[bf16]") {
  Tensor x = tensor({1.0, 3.14159274, -2.5}, {3}).requires_grad_();
  CHECK(to(x, DType::Float32).is_same(x));
  Tensor y = to(x, DType::BFloat16);
  CHECK(y.dtype() == DType::BFloat16);
  CHECK(y.requires_grad());
  Tensor z = to(y, DType::Float32);
  CHECK(z.to_vector() == std::vector<float>{1.0f, 3.140625f, -2.5f});
  sum(mul(z, tensor({2.0, 3.0, 4.0}, {3}))).backward();
  CHECK(x.grad().dtype() == DType::Float32);
  CHECK(x.grad().to_vector() == std::vector<float>{2.0f, 3.0f, 4.0f});
  // float64 round trip through float32 keeps gradient dtype float64.
  Tensor d = tensor({0.5}, {1}, DType::Float64).requires_grad_();
  sum(to(to(d, DType::Float32), DType::Float64)).backward();
  CHECK(d.grad().dtype() == DType::Float64);
  CHECK(d.grad().item() == 1.0);
}

TEST_CASE("safetensors writes BF16 and reads it back as bfloat16, bit for bit",
          "[bf16][safetensors]") {
  Tensor x = copy_contiguous(tensor({1.0, -3.14159274, 1e30, -0.0}, {2, 2}), DType::BFloat16);
  const auto bytes = serialize_safetensors({{"w", x}});
  SafetensorsFile f = parse_safetensors(bytes, "bf16.safetensors");
  CHECK(f.at("w").dtype == "BF16");
  const Tensor& r = f.tensor("w");
  CHECK(r.dtype() == DType::BFloat16);
  CHECK(r.shape() == Shape{2, 2});
  const auto a = x.to_vector<bfloat16>(), b = r.to_vector<bfloat16>();
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].bits == b[i].bits);
  // Two bytes an element, little-endian: the header's data_offsets span 8 bytes.
  CHECK(f.at("w").shape == std::vector<std::int64_t>{2, 2});
}
