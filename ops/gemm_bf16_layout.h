// Internal to the bf16 GEMM engine (ops/gemm_bf16*.cpp): operands as 4-D boxes, the copies
// between layouts that packing and the sgemm fallback need, and per-thread scratch buffers.
#pragma once
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "core/parallel.h"
#include "core/shape.h"
#include "ops/gemm_bf16.h"

namespace pw::gemm::detail {

// "batch (2,4) M=65 N=65 K=32, strides (batch0,batch1,row,col) A (..) B (..) C (..)".
std::string desc_str(const GemmDesc& d);

// One operand as a 4-D box (batch0, batch1, rows, cols) with element strides, stored row-major
// (unit col stride) or transposed (unit row stride).
struct Layout {
  Shape dims, strides;
  bool row_major = true;
};

// The layout of a valid descriptor's operand as oneDNN sees it: a broadcast batch dim (stride
// 0) becomes a dim of size 1, and every size-1 dim takes the stride a dense layout in the same
// order would give it, since oneDNN's layout matching dislikes arbitrary strides there.
Layout layout_of(const GemmDesc& d, std::int64_t rows, std::int64_t cols, const MatrixStrides& s);
// The same box without gaps in the canonical dim order (batch0, batch1, rows, cols): row-major,
// or transposed (batch0, batch1, cols, rows) when l is and keep_orientation.
Layout dense_layout(const Layout& l, bool keep_orientation);
// The same box without gaps, its dims kept in l's order in memory: q read from a packed
// (B, N, 3, H, Dh) buffer as (B, H, N, Dh) becomes a dense (B, N, H, Dh).
Layout compact_layout(const Layout& l);
// True when the box has no gaps (whatever the order of its dims).
bool is_dense(const Layout& l);
// True when a and b address every element of the box at the same offset.
bool same_layout(const Layout& a, const Layout& b);
inline std::int64_t numel_of(const Layout& l) {
  return l.dims[0] * l.dims[1] * l.dims[2] * l.dims[3];
}

// The dims of l from the largest stride to the smallest (ties in canonical order).
std::array<std::size_t, 4> memory_order(const Layout& l);

// Copies (and converts) a box between two layouts of the same dims, in parallel, walking the
// source in memory order so that runs contiguous in both merge into long rows.
template <typename S, typename T>
void copy_box(const S* src, const Layout& from, T* dst, const Layout& to) {
  const auto order = memory_order(from);
  Shape shape(4);
  std::array<Shape, 2> strides{Shape(4), Shape(4)};
  for (std::size_t i = 0; i < 4; ++i) {
    shape[i] = from.dims[order[i]];
    strides[0][i] = from.strides[order[i]];
    strides[1][i] = to.strides[order[i]];
  }
  strided_loop<2>(shape, strides,
                  [&](const std::array<std::int64_t, 2>& off, std::int64_t len,
                      const std::array<std::int64_t, 2>& step) {
                    const S* s = src + off[0];
                    T* t = dst + off[1];
                    if (step[0] != 1 || step[1] != 1) {
                      for (std::int64_t i = 0; i < len; ++i)
                        t[i * step[1]] = static_cast<T>(s[i * step[0]]);
                    } else if constexpr (std::is_same_v<S, T>) {
                      std::memcpy(t, s, static_cast<std::size_t>(len) * sizeof(T));
                    } else if constexpr (std::is_same_v<S, bfloat16> && std::is_same_v<T, float>) {
                      bfloat16_to_float(s, t, len);
                    } else {
                      for (std::int64_t i = 0; i < len; ++i) t[i] = static_cast<T>(s[i]);
                    }
                  });
}

// A 64-byte aligned buffer that grows on demand and is reused (one per thread and operand).
class Scratch {
 public:
  template <typename T>
  T* get(std::int64_t count) {
    const auto bytes = static_cast<std::size_t>(count) * sizeof(T);
    if (bytes > size_) {
      size_ = (bytes + 63) / 64 * 64;
      data_.reset(std::aligned_alloc(64, size_));
      PW_CHECK(data_ != nullptr, "[gemm_bf16] cannot allocate {} bytes of scratch", size_);
    }
    return static_cast<T*>(data_.get());
  }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data_;
  std::size_t size_ = 0;
};

// Non-null operands, and a bias when has_bias.
void check_pointers(const GemmDesc& d, const bfloat16* A, const bfloat16* B, const void* C,
                    const float* bias);

}  // namespace pw::gemm::detail
