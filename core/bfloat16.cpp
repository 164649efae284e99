#include "core/bfloat16.h"

#include "core/parallel.h"

namespace pw {

void float_to_bfloat16(const float* src, bfloat16* dst, std::int64_t n) {
  auto* out = reinterpret_cast<std::uint16_t*>(dst);
  parallel_for(n, kParallelGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) out[i] = bfloat16::from_float_bits(src[i]);
  });
}

void bfloat16_to_float(const bfloat16* src, float* dst, std::int64_t n) {
  const auto* in = reinterpret_cast<const std::uint16_t*>(src);
  auto* out = reinterpret_cast<std::uint32_t*>(dst);
  parallel_for(n, kParallelGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) out[i] = std::uint32_t{in[i]} << 16;
  });
}

}  // namespace pw
