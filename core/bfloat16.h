// bfloat16: the top 16 bits of an IEEE float32 (sign, 8 exponent bits, 7 mantissa bits). It keeps
// float32's range with about 3 significant decimal digits; patchwork uses it only as a storage
// and GEMM-operand type, always converting to float32 to compute.
#pragma once
#include <bit>
#include <cstdint>

namespace pw {

struct bfloat16 {
  std::uint16_t bits = 0;

  bfloat16() = default;
  // float32 -> bfloat16 with round-to-nearest-even; NaN stays NaN (quiet), infinities stay.
  explicit bfloat16(float f) : bits(from_float_bits(f)) {}
  explicit operator float() const { return std::bit_cast<float>(std::uint32_t{bits} << 16); }

  static constexpr bfloat16 from_bits(std::uint16_t b) {
    bfloat16 r;
    r.bits = b;
    return r;
  }
  static constexpr std::uint16_t from_float_bits(float f) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    // NaN: keep the sign and the top payload bits, and set the quiet bit so that rounding can
    // never turn a NaN whose payload lives in the low bits into an infinity.
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
    // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate. A
    // carry out of the mantissa correctly bumps the exponent (to infinity past the largest
    // finite value), and subnormals round like any other value.
    const std::uint32_t lsb = (u >> 16) & 1u;
    return static_cast<std::uint16_t>((u + 0x7fffu + lsb) >> 16);
  }
};
static_assert(sizeof(bfloat16) == 2);

// Converts n values; both loops vectorise (integer arithmetic only) and run in parallel for
// large n.
void float_to_bfloat16(const float* src, bfloat16* dst, std::int64_t n);
void bfloat16_to_float(const bfloat16* src, float* dst, std::int64_t n);

}  // namespace pw
