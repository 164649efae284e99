// max_pool2d: a forward kernel per input layout, and the backward rule.
//   contiguous (B, C, H, W): plane by plane, parallel over the B*C planes;
//   channels-last, (B, H, W, C) memory: output pixel by output pixel with the C channels as
//     the inner (vectorised) loop, parallel over output rows; the output is channels-last too;
//   any other strides: plane by plane through the strides (the general path).
// Each output keeps the in-plane index iy * W + ix of its window's maximum (int32, in the
// output's memory order). Backward zeroes dx in the output's layout and adds each output's
// gradient at its index: parallel over planes (contiguous) or over images (channels-last), so
// that no two threads add into the same element of dx.
// FP exceptions are never inspected: without trapping math GCC can turn the compare-and-select
// of the channels-last loop into vector blends.
#ifndef __clang__  // clang does not trap math by default and has no such pragma
#pragma GCC optimize("no-trapping-math")
#endif
#include "ops/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/shape.h"

namespace pw {
namespace {

using Index = std::int32_t;

struct PoolGeom {
  std::int64_t B, C, H, W, k, stride, pad, Ho, Wo;
  // The window of output (oy, ox) clipped to the image, rows [y0, y1) and columns [x0, x1):
  // padding is -inf and never wins, so it is simply skipped.
  std::int64_t y0(std::int64_t oy) const { return std::max<std::int64_t>(oy * stride - pad, 0); }
  std::int64_t y1(std::int64_t oy) const { return std::min(oy * stride - pad + k, H); }
  std::int64_t x0(std::int64_t ox) const { return std::max<std::int64_t>(ox * stride - pad, 0); }
  std::int64_t x1(std::int64_t ox) const { return std::min(ox * stride - pad + k, W); }
};

// PyTorch's rule: a larger value or a NaN takes over, so ties keep the first maximum.
template <typename T>
inline bool takes_over(T v, T m) {
  return v > m || v != v;
}

// One window column kx of every output in a row: out[ox] takes over from row[(ox * S + off) * sx]
// for ox in [lo, hi), where off = kx - padding. S > 0 fixes the stride at compile time (so that
// the loop vectorises with unit sx), S = 0 reads it from `stride`.
template <int S, typename T>
inline void pool_row_column(const T* __restrict__ row, std::int64_t sx, Index stride, Index off,
                            Index lo, Index hi, Index base, T* __restrict__ o,
                            Index* __restrict__ id) {
  const Index s = S > 0 ? S : stride;
  if (sx == 1) {
    for (Index ox = lo; ox < hi; ++ox) {
      const T v = row[ox * s + off];
      const bool wins = takes_over(v, o[ox]);
      o[ox] = wins ? v : o[ox];
      id[ox] = wins ? base + ox * s : id[ox];
    }
  } else {
    for (Index ox = lo; ox < hi; ++ox) {
      const T v = row[(ox * s + off) * sx];
      const bool wins = takes_over(v, o[ox]);
      o[ox] = wins ? v : o[ox];
      id[ox] = wins ? base + ox * s : id[ox];
    }
  }
}

// Output planes (B*C, Ho, Wo) contiguous from x (B, C, H, W) with any strides. A whole output
// row at a time: for each window element (iy, kx) in row-major window order, every output of
// the row whose window holds that column takes it over if larger (a vector loop along the row
// when W has unit stride), so each output still sees its window in row-major order.
template <typename T>
void pool_planes(const Tensor& x, const PoolGeom& g, T* out, Index* idx) {
  const Shape& s = x.strides();
  const T* px = x.data<T>();
  const std::int64_t plane_out = g.Ho * g.Wo;
  // Column kx of the window lies inside the image for outputs ox in [lo[kx], hi[kx]).
  std::vector<Index> lo(static_cast<std::size_t>(g.k)), hi(static_cast<std::size_t>(g.k));
  for (std::int64_t kx = 0; kx < g.k; ++kx) {
    const std::int64_t first = g.pad - kx, last = g.W - 1 + g.pad - kx;  // ox * stride bounds
    lo[kx] = static_cast<Index>(first <= 0 ? 0 : (first + g.stride - 1) / g.stride);
    hi[kx] = static_cast<Index>(last < 0 ? 0 : std::min(g.Wo, last / g.stride + 1));
  }
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(g.H * g.W, 1));
  parallel_for(g.B * g.C, grain, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      const T* src = px + (p / g.C) * s[0] + (p % g.C) * s[1];
      for (std::int64_t oy = 0; oy < g.Ho; ++oy) {
        T* o = out + p * plane_out + oy * g.Wo;
        Index* id = idx + p * plane_out + oy * g.Wo;
        const std::int64_t ya = g.y0(oy), yb = g.y1(oy);
        for (std::int64_t ox = 0; ox < g.Wo; ++ox) {
          o[ox] = -std::numeric_limits<T>::infinity();
          id[ox] = static_cast<Index>(ya * g.W + g.x0(ox));
        }
        for (std::int64_t iy = ya; iy < yb; ++iy)
          for (std::int64_t kx = 0; kx < g.k; ++kx) {
            const auto off = static_cast<Index>(kx - g.pad);
            const auto base = static_cast<Index>(iy * g.W + off);
            const T* row = src + iy * s[2];
            const auto stride = static_cast<Index>(g.stride);
            if (g.stride == 1)
              pool_row_column<1>(row, s[3], stride, off, lo[kx], hi[kx], base, o, id);
            else if (g.stride == 2)
              pool_row_column<2>(row, s[3], stride, off, lo[kx], hi[kx], base, o, id);
            else
              pool_row_column<0>(row, s[3], stride, off, lo[kx], hi[kx], base, o, id);
          }
      }
    }
  });
}

// Output (B, Ho, Wo, C) from x (B, H, W, C), both dense.
template <typename T>
void pool_channels_last(const T* x, const PoolGeom& g, T* out, Index* idx) {
  const std::int64_t C = g.C;
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(g.Wo * C * g.k * g.k, 1));
  parallel_for(g.B * g.Ho, grain, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t b = r / g.Ho, oy = r % g.Ho;
      const std::int64_t ya = g.y0(oy), yb = g.y1(oy);
      for (std::int64_t ox = 0; ox < g.Wo; ++ox) {
        const std::int64_t xa = g.x0(ox), xb = g.x1(ox);
        T* __restrict__ o = out + (r * g.Wo + ox) * C;
        Index* __restrict__ id = idx + (r * g.Wo + ox) * C;
        const auto first = static_cast<Index>(ya * g.W + xa);
        for (std::int64_t c = 0; c < C; ++c) {
          o[c] = -std::numeric_limits<T>::infinity();
          id[c] = first;
        }
        for (std::int64_t iy = ya; iy < yb; ++iy)
          for (std::int64_t ix = xa; ix < xb; ++ix) {
            const T* __restrict__ src = x + ((b * g.H + iy) * g.W + ix) * C;
            const auto here = static_cast<Index>(iy * g.W + ix);
            for (std::int64_t c = 0; c < C; ++c) {
              const T v = src[c];
              const bool wins = takes_over(v, o[c]);
              o[c] = wins ? v : o[c];
              id[c] = wins ? here : id[c];
            }
          }
      }
    }
  });
}

// dx planes (B*C, H, W) contiguous from g (B, C, Ho, Wo) with any strides.
template <typename T>
void unpool_planes(const Tensor& grad, const PoolGeom& g, const Index* idx, T* dx) {
  const Shape& s = grad.strides();
  const T* pg = grad.data<T>();
  const std::int64_t plane_in = g.H * g.W, plane_out = g.Ho * g.Wo;
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(plane_in, 1));
  parallel_for(g.B * g.C, grain, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      T* d = dx + p * plane_in;
      std::fill(d, d + plane_in, T(0));
      const T* gp = pg + (p / g.C) * s[0] + (p % g.C) * s[1];
      const Index* id = idx + p * plane_out;
      for (std::int64_t oy = 0; oy < g.Ho; ++oy)
        for (std::int64_t ox = 0; ox < g.Wo; ++ox)
          d[id[oy * g.Wo + ox]] += gp[oy * s[2] + ox * s[3]];
    }
  });
}

// dx (B, H, W, C) dense from g (B, C, Ho, Wo) with any strides (channels-last reads it in
// order); each image's dx is written by one thread.
template <typename T>
void unpool_channels_last(const Tensor& grad, const PoolGeom& g, const Index* idx, T* dx) {
  const Shape& s = grad.strides();
  const T* pg = grad.data<T>();
  const std::int64_t C = g.C, image = g.H * g.W * C;
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(image, 1));
  parallel_for(g.B, grain, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      T* d = dx + b * image;
      std::fill(d, d + image, T(0));
      for (std::int64_t oy = 0; oy < g.Ho; ++oy)
        for (std::int64_t ox = 0; ox < g.Wo; ++ox) {
          const Index* id = idx + ((b * g.Ho + oy) * g.Wo + ox) * C;
          const T* gp = pg + b * s[0] + oy * s[2] + ox * s[3];
          if (s[1] == 1) {
            for (std::int64_t c = 0; c < C; ++c) d[id[c] * C + c] += gp[c];
          } else {
            for (std::int64_t c = 0; c < C; ++c) d[id[c] * C + c] += gp[c * s[1]];
          }
        }
    }
  });
}

// A (B, C, H, W) view of new (B, H, W, C) memory.
Tensor empty_channels_last(std::int64_t B, std::int64_t C, std::int64_t H, std::int64_t W,
                           DType dt) {
  return make_view(empty({B, H, W, C}, dt), {B, C, H, W}, {H * W * C, 1, W * C, C}, 0);
}

}  // namespace

Tensor max_pool2d(const Tensor& x, std::int64_t kernel, std::int64_t stride, std::int64_t padding) {
  PW_CHECK(x.dim() == 4, "[max_pool2d] expected input (B, C, H, W), got {}", shape_str(x.shape()));
  if (stride == 0) stride = kernel;
  PW_CHECK(kernel >= 1 && stride >= 1 && padding >= 0,
           "[max_pool2d] invalid kernel {}, stride {} or padding {}", kernel, stride, padding);
  PW_CHECK(2 * padding <= kernel, "[max_pool2d] padding {} is more than half the kernel {}",
           padding, kernel);
  PoolGeom g{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], kernel, stride, padding, 0, 0};
  PW_CHECK(g.H + 2 * padding >= kernel && g.W + 2 * padding >= kernel,
           "[max_pool2d] kernel {}x{} is larger than the input {} padded by {}", kernel, kernel,
           shape_str(x.shape()), padding);
  PW_CHECK(g.H * g.W <= std::numeric_limits<Index>::max(),
           "[max_pool2d] input {} has too many pixels per plane", shape_str(x.shape()));
  g.Ho = (g.H + 2 * padding - kernel) / stride + 1;
  g.Wo = (g.W + 2 * padding - kernel) / stride + 1;

  const bool channels_last = !x.is_contiguous() && is_channels_last(x);
  Tensor out = channels_last ? empty_channels_last(g.B, g.C, g.Ho, g.Wo, x.dtype())
                             : empty({g.B, g.C, g.Ho, g.Wo}, x.dtype());
  const std::shared_ptr<Index[]> idx(new Index[static_cast<std::size_t>(out.numel())]);
  PW_DISPATCH(x.dtype(), [&] {
    if (channels_last)
      pool_channels_last(x.data<scalar_t>(), g, out.data<scalar_t>(), idx.get());
    else
      pool_planes(x, g, out.data<scalar_t>(), idx.get());
  });
  if (needs_grad({x}))
    record("max_pool2d", out, {x},
           [idx, g, channels_last](const Tensor& grad, const Node&) -> std::vector<Tensor> {
             Tensor dx = channels_last ? empty_channels_last(g.B, g.C, g.H, g.W, grad.dtype())
                                       : empty({g.B, g.C, g.H, g.W}, grad.dtype());
             PW_DISPATCH(grad.dtype(), [&] {
               if (channels_last)
                 unpool_channels_last(grad, g, idx.get(), dx.data<scalar_t>());
               else
                 unpool_planes(grad, g, idx.get(), dx.data<scalar_t>());
             });
             return {dx};
           });
  return out;
}

}  // namespace pw
