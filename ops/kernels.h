// Kernel drivers shared by the ops: map a scalar function over one, two or three broadcast
// tensors into a new contiguous output. A contiguous fast path and the general strided path
// (core/parallel.h) are both here; the functions passed in are the only per-op code.
#pragma once
#include <array>

#include "core/parallel.h"
#include "core/tensor.h"
#include "ops/broadcast.h"

namespace pw::kernels {

// out[i] = f(a[i])
template <typename T, typename F>
void map1(const Tensor& out, const Tensor& a, F f) {
  T* o = out.data<T>();
  const T* pa = a.data<T>();
  if (out.is_contiguous() && a.is_contiguous() && a.shape() == out.shape()) {
    parallel_for(out.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) o[i] = f(pa[i]);
    });
    return;
  }
  strided_loop<2>(out.shape(), {out.strides(), broadcast_strides(a, out.shape())},
                  [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                      const std::array<std::int64_t, 2>& s) {
                    T* po = o + off[0];
                    const T* qa = pa + off[1];
                    if (s[0] == 1 && s[1] == 1) {
                      for (std::int64_t i = 0; i < n; ++i) po[i] = f(qa[i]);
                    } else {
                      for (std::int64_t i = 0; i < n; ++i) po[i * s[0]] = f(qa[i * s[1]]);
                    }
                  });
}

// out[i] = f(a[i], b[i]) with a and b broadcast to out's shape.
template <typename T, typename F>
void map2(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  T* o = out.data<T>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  if (out.is_contiguous() && a.is_contiguous() && b.is_contiguous() && a.shape() == out.shape() &&
      b.shape() == out.shape()) {
    parallel_for(out.numel(), kParallelGrain, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) o[i] = f(pa[i], pb[i]);
    });
    return;
  }
  strided_loop<3>(
      out.shape(),
      {out.strides(), broadcast_strides(a, out.shape()), broadcast_strides(b, out.shape())},
      [&](const std::array<std::int64_t, 3>& off, std::int64_t n,
          const std::array<std::int64_t, 3>& s) {
        T* po = o + off[0];
        const T* qa = pa + off[1];
        const T* qb = pb + off[2];
        if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
          for (std::int64_t i = 0; i < n; ++i) po[i] = f(qa[i], qb[i]);
        } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {
          const T vb = *qb;
          for (std::int64_t i = 0; i < n; ++i) po[i] = f(qa[i], vb);
        } else {
          for (std::int64_t i = 0; i < n; ++i) po[i * s[0]] = f(qa[i * s[1]], qb[i * s[2]]);
        }
      });
}

// out[i] = f(a[i], b[i], c[i]) with all three broadcast to out's shape.
template <typename T, typename F>
void map3(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, F f) {
  T* o = out.data<T>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  const T* pc = c.data<T>();
  strided_loop<4>(out.shape(),
                  {out.strides(), broadcast_strides(a, out.shape()),
                   broadcast_strides(b, out.shape()), broadcast_strides(c, out.shape())},
                  [&](const std::array<std::int64_t, 4>& off, std::int64_t n,
                      const std::array<std::int64_t, 4>& s) {
                    for (std::int64_t i = 0; i < n; ++i)
                      o[off[0] + i * s[0]] =
                          f(pa[off[1] + i * s[1]], pb[off[2] + i * s[2]], pc[off[3] + i * s[3]]);
                  });
}

// Checks that the operands of `op` share one dtype and returns it; the error names the op and
// every operand's shape and dtype: "[add] dtype mismatch: (2,3) float32 vs (3) float64".
DType common_dtype(const char* op, std::initializer_list<Tensor> ts);
// Checks that `t` can be written in place elementwise: no two elements share memory (an
// expanded tensor has stride 0 on a dim of size > 1, so a loop would write one slot many times).
void check_writable(const char* op, const Tensor& t);

}  // namespace pw::kernels
