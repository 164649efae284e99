// conv2d (NCHW) as im2col + one GEMM, with the patch-embedding fast path, and patchify /
// unpatchify. Both conv paths build the patch matrix cols (B*L, C*kH*kW), L = Ho*Wo output
// positions, each row in the weight's (c, y, x) order, and then run linear's GEMM:
//   y_rows (B*L, Cout) = cols W2^T + b,  W2 = weight viewed as (Cout, C*kH*kW)
// When kernel == stride and padding == 0, cols is exactly patchify(x): one copy, no index math.
// The output is returned as a (B, Cout, Ho, Wo) view of y_rows (channels-last memory), so that
// flatten(2).transpose(1, 2) to (B, L, Cout) tokens needs no copy. Under autocast the GEMM
// reads bfloat16 (see ops/blas.h, gemm_operands), and im2col writes cols in bfloat16 directly.
// A channels-last input (the output of another conv, of max_pool2d) orders each cols row as
// (y, x, c) instead, so that every window pixel is one contiguous run of C values, and the
// weight is read as (Cout, kH, kW, C) to match; its dx is channels-last too.
#include "ops/conv.h"

#include <type_traits>

#include "core/autocast.h"
#include "core/autograd.h"
#include "core/bfloat16.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/shape.h"

namespace pw {
namespace {

struct ConvGeom {
  std::int64_t B, C, H, W, kH, kW, stride, pad, Ho, Wo;
  std::int64_t L() const { return Ho * Wo; }
  std::int64_t K() const { return C * kH * kW; }
};

// Copies between an image (B, C, H, W) with any strides and its patches (B, N, C*P*P)
// (contiguous), in either direction; parallel over the B*C*H image rows, which touch disjoint
// patch entries.
template <typename T>
void patch_copy(const Tensor& image, const Tensor& patches, std::int64_t P, bool to_patches) {
  const std::int64_t B = image.shape()[0], C = image.shape()[1], H = image.shape()[2],
                     W = image.shape()[3];
  const std::int64_t Wp = W / P, D = C * P * P, N = (H / P) * Wp;
  const Shape& s = image.strides();
  T* img = image.data<T>();
  T* pat = patches.data<T>();
  parallel_for(B * C * H, std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(W, 1)),
               [&](std::int64_t r0, std::int64_t r1) {
                 for (std::int64_t r = r0; r < r1; ++r) {
                   const std::int64_t y = r % H, c = (r / H) % C, b = r / (H * C);
                   T* row = img + b * s[0] + c * s[1] + y * s[2];
                   // Patch (y / P, x / P), entry (c, y % P, x % P).
                   T* prow = pat + (b * N + (y / P) * Wp) * D + c * P * P + (y % P) * P;
                   for (std::int64_t px = 0; px < Wp; ++px) {
                     T* dst = prow + px * D;
                     for (std::int64_t kx = 0; kx < P; ++kx) {
                       if (to_patches)
                         dst[kx] = row[(px * P + kx) * s[3]];
                       else
                         row[(px * P + kx) * s[3]] = dst[kx];
                     }
                   }
                 }
               });
}

// One value of x as a cols entry: as it is, or rounded to bfloat16 (im2col under autocast).
template <typename Out, typename T>
inline Out to_cols(T v) {
  if constexpr (std::is_same_v<Out, T>)
    return v;
  else
    return Out(static_cast<float>(v));
}

// cols (B*L, C*kH*kW) from x with any strides and zero padding, each row in the weight's
// (c, y, x) order; parallel over the B*Ho output rows.
template <typename T, typename Out>
void im2col(const Tensor& x, const ConvGeom& g, Out* cols) {
  const Shape& s = x.strides();
  const T* px = x.data<T>();
  const std::int64_t K = g.K();
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(g.Wo * K, 1));
  parallel_for(g.B * g.Ho, grain, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t b = r / g.Ho, oy = r % g.Ho;
      for (std::int64_t ox = 0; ox < g.Wo; ++ox) {
        Out* dst = cols + (r * g.Wo + ox) * K;
        const std::int64_t x0 = ox * g.stride - g.pad;
        for (std::int64_t c = 0; c < g.C; ++c)
          for (std::int64_t ky = 0; ky < g.kH; ++ky, dst += g.kW) {
            const std::int64_t y = oy * g.stride + ky - g.pad;
            if (y < 0 || y >= g.H) {
              std::fill(dst, dst + g.kW, Out(0.0f));
              continue;
            }
            const T* row = px + b * s[0] + c * s[1] + y * s[2];
            for (std::int64_t kx = 0; kx < g.kW; ++kx) {
              const std::int64_t xx = x0 + kx;
              dst[kx] = xx >= 0 && xx < g.W ? to_cols<Out>(row[xx * s[3]]) : Out(0.0f);
            }
          }
      }
    }
  });
}

// n values of x as cols entries (a bfloat16 conversion vectorises inline; the runs are short).
template <typename T, typename Out>
inline void copy_run(const T* __restrict__ src, Out* __restrict__ dst, std::int64_t n) {
  if constexpr (std::is_same_v<Out, T>) {
    std::copy(src, src + n, dst);
  } else if constexpr (std::is_same_v<T, float>) {
    auto* out = reinterpret_cast<std::uint16_t*>(dst);
    for (std::int64_t i = 0; i < n; ++i) out[i] = bfloat16::from_float_bits(src[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = to_cols<Out>(src[i]);
  }
}

// cols (B*L, kH*kW*C) in (y, x, c) order from channels-last x, (B, H, W, C) memory: a window
// row inside the image is one run of kW*C contiguous values; at the borders each pixel is a
// run of C values or zeros.
template <typename T, typename Out>
void im2col_channels_last(const T* x, const ConvGeom& g, Out* cols) {
  const std::int64_t C = g.C, K = g.K(), run = g.kW * C;
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(g.Wo * K, 1));
  parallel_for(g.B * g.Ho, grain, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t b = r / g.Ho, oy = r % g.Ho;
      for (std::int64_t ox = 0; ox < g.Wo; ++ox) {
        Out* dst = cols + (r * g.Wo + ox) * K;
        const std::int64_t x0 = ox * g.stride - g.pad;
        for (std::int64_t ky = 0; ky < g.kH; ++ky, dst += run) {
          const std::int64_t y = oy * g.stride + ky - g.pad;
          if (y < 0 || y >= g.H) {
            std::fill(dst, dst + run, Out(0.0f));
            continue;
          }
          const T* row = x + (b * g.H + y) * g.W * C;
          if (x0 >= 0 && x0 + g.kW <= g.W) {
            copy_run(row + x0 * C, dst, run);
            continue;
          }
          for (std::int64_t kx = 0; kx < g.kW; ++kx) {
            const std::int64_t xx = x0 + kx;
            if (xx < 0 || xx >= g.W)
              std::fill(dst + kx * C, dst + (kx + 1) * C, Out(0.0f));
            else
              copy_run(row + xx * C, dst + kx * C, C);
          }
        }
      }
    }
  });
}

// dx (B, H, W, C) = sum of dcols entries (rows in (y, x, c) order) over the positions that read
// each pixel; parallel over images, so that no two threads add into the same pixel.
template <typename T>
void col2im_channels_last(const T* dcols, const ConvGeom& g, T* dx) {
  const std::int64_t C = g.C, K = g.K(), image = g.H * g.W * C;
  const std::int64_t per_image = std::max<std::int64_t>(g.L() * K, 1);
  parallel_for(g.B, std::max<std::int64_t>(1, kParallelGrain / per_image),
               [&](std::int64_t b0, std::int64_t b1) {
                 for (std::int64_t b = b0; b < b1; ++b) {
                   T* img = dx + b * image;
                   std::fill(img, img + image, T(0));
                   for (std::int64_t oy = 0; oy < g.Ho; ++oy)
                     for (std::int64_t ox = 0; ox < g.Wo; ++ox) {
                       const T* src = dcols + ((b * g.Ho + oy) * g.Wo + ox) * K;
                       for (std::int64_t ky = 0; ky < g.kH; ++ky) {
                         const std::int64_t y = oy * g.stride + ky - g.pad;
                         for (std::int64_t kx = 0; kx < g.kW; ++kx, src += C) {
                           const std::int64_t xx = ox * g.stride + kx - g.pad;
                           if (y < 0 || y >= g.H || xx < 0 || xx >= g.W) continue;
                           T* __restrict__ d = img + (y * g.W + xx) * C;
                           for (std::int64_t c = 0; c < C; ++c) d[c] += src[c];
                         }
                       }
                     }
                 }
               });
}

// dx (B, C, H, W) contiguous = sum of dcols entries over the positions that read each pixel;
// parallel over images, so that no two threads add into the same pixel.
template <typename T>
void col2im(const T* dcols, const ConvGeom& g, T* dx) {
  const std::int64_t K = g.K();
  const std::int64_t per_image = std::max<std::int64_t>(g.L() * K, 1);
  parallel_for(g.B, std::max<std::int64_t>(1, kParallelGrain / per_image),
               [&](std::int64_t b0, std::int64_t b1) {
                 for (std::int64_t b = b0; b < b1; ++b) {
                   T* img = dx + b * g.C * g.H * g.W;
                   std::fill(img, img + g.C * g.H * g.W, T(0));
                   for (std::int64_t oy = 0; oy < g.Ho; ++oy)
                     for (std::int64_t ox = 0; ox < g.Wo; ++ox) {
                       const T* src = dcols + ((b * g.Ho + oy) * g.Wo + ox) * K;
                       for (std::int64_t c = 0; c < g.C; ++c)
                         for (std::int64_t ky = 0; ky < g.kH; ++ky) {
                           const std::int64_t y = oy * g.stride + ky - g.pad;
                           for (std::int64_t kx = 0; kx < g.kW; ++kx, ++src) {
                             const std::int64_t xx = ox * g.stride + kx - g.pad;
                             if (y >= 0 && y < g.H && xx >= 0 && xx < g.W)
                               img[(c * g.H + y) * g.W + xx] += *src;
                           }
                         }
                     }
                 }
               });
}

// The dims of t in the given order, as a view (no autograd).
Tensor permute_view(const Tensor& t, const Shape& order) {
  Shape shape, strides;
  for (std::int64_t d : order) {
    shape.push_back(t.shape()[static_cast<std::size_t>(d)]);
    strides.push_back(t.strides()[static_cast<std::size_t>(d)]);
  }
  return make_view(t, shape, strides, t.offset());
}

Tensor patchify_values(const Tensor& x, std::int64_t P) {
  const std::int64_t B = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  Tensor out = empty({B, (H / P) * (W / P), C * P * P}, x.dtype());
  PW_DISPATCH(x.dtype(), [&] { patch_copy<scalar_t>(x, out, P, true); });
  return out;
}

Tensor unpatchify_values(const Tensor& patches, std::int64_t P, std::int64_t C, std::int64_t H,
                         std::int64_t W) {
  Tensor p = blas::dense(patches);
  Tensor img = empty({p.shape()[0], C, H, W}, p.dtype());
  PW_DISPATCH(p.dtype(), [&] { patch_copy<scalar_t>(img, p, P, false); });
  return img;
}

void check_patch_image(const char* op, const Shape& s, std::int64_t P) {
  PW_CHECK(s.size() == 4 && P > 0 && s[2] % P == 0 && s[3] % P == 0,
           "[{}] image {} is not divisible into {}x{} patches", op, shape_str(s), P, P);
}

Tensor conv2d_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, std::int64_t stride,
                   std::int64_t padding, bool allow_fast_path) {
  PW_CHECK(x.dim() == 4 && weight.dim() == 4 && weight.shape()[1] == x.shape()[1],
           "[conv2d] input {} (B, C, H, W) does not match weight {} (Cout, C, kH, kW)",
           shape_str(x.shape()), shape_str(weight.shape()));
  PW_CHECK(!bias.defined() || bias.shape() == Shape{weight.shape()[0]},
           "[conv2d] bias {} does not match weight {}", shape_str(bias.shape()),
           shape_str(weight.shape()));
  PW_CHECK(stride >= 1 && padding >= 0, "[conv2d] invalid stride {} or padding {}", stride,
           padding);
  PW_CHECK(x.dtype() == weight.dtype() && (!bias.defined() || bias.dtype() == x.dtype()),
           "[conv2d] dtype mismatch between input, weight and bias");
  ConvGeom g{x.shape()[0],
             x.shape()[1],
             x.shape()[2],
             x.shape()[3],
             weight.shape()[2],
             weight.shape()[3],
             stride,
             padding,
             0,
             0};
  g.Ho = (g.H + 2 * padding - g.kH) / stride + 1;
  g.Wo = (g.W + 2 * padding - g.kW) / stride + 1;
  PW_CHECK(g.H + 2 * padding >= g.kH && g.W + 2 * padding >= g.kW,
           "[conv2d] kernel {}x{} is larger than the padded input {}", g.kH, g.kW,
           shape_str(x.shape()));
  const std::int64_t Cout = weight.shape()[0];
  const bool fast = allow_fast_path && g.kH == g.kW && g.kH == stride && padding == 0 &&
                    g.H % stride == 0 && g.W % stride == 0;

  // A channels-last input is read as (B, H, W, C) rows; a contiguous one (C == 1 or 1x1 maps are
  // both) through the general path.
  const bool channels_last = !fast && !x.is_contiguous() && is_channels_last(x);
  // Under autocast im2col writes the GEMM's bfloat16 operand itself (one pass, not two).
  const bool bf16_cols = !fast && Autocast::is_enabled() && x.dtype() == DType::Float32;
  Tensor cols;
  if (fast) {
    cols = patchify_values(x, stride);
  } else {
    cols = empty({g.B * g.L(), g.K()}, bf16_cols ? DType::BFloat16 : x.dtype());
    PW_DISPATCH(x.dtype(), [&] {
      if (bf16_cols && channels_last)
        im2col_channels_last(x.data<scalar_t>(), g, cols.data<bfloat16>());
      else if (bf16_cols)
        im2col<scalar_t>(x, g, cols.data<bfloat16>());
      else if (channels_last)
        im2col_channels_last(x.data<scalar_t>(), g, cols.data<scalar_t>());
      else
        im2col<scalar_t>(x, g, cols.data<scalar_t>());
    });
  }
  cols = make_view(cols, {g.B * g.L(), g.K()}, {g.K(), 1}, 0);
  // Under autocast, cols and the weight (cast once per step) are read in bfloat16, and cols is
  // saved for backward in bfloat16.
  auto [cols_op, w_op] = blas::gemm_operands(cols, weight);
  cols = cols_op;
  Tensor w2 = blas::dense(w_op);
  if (channels_last)  // (Cout, C, kH, kW) -> (Cout, kH, kW, C), the order of the cols rows
    w2 = copy_contiguous(permute_view(w2, {0, 2, 3, 1}));
  w2 = make_view(w2, {Cout, g.K()}, {g.K(), 1}, w2.offset());
  Tensor y = blas::linear_rows(cols, w2, bias);  // (B*L, Cout)
  const Shape out_shape{g.B, Cout, g.Ho, g.Wo};
  Tensor out = make_view(y, out_shape, {g.L() * Cout, 1, g.Wo * Cout, Cout}, 0);
  if (needs_grad({x, weight, bias}))
    record("conv2d", out, {x, weight, bias},
           [cols, sw = SavedTensor(w2), g, fast, channels_last, Cout](
               const Tensor& grad, const Node& n) -> std::vector<Tensor> {
             // (B, Cout, Ho, Wo) -> rows (B*L, Cout): free when grad has the output's layout.
             const Shape& s = grad.strides();
             Tensor rows = blas::dense(
                 make_view(grad, {g.B, g.Ho, g.Wo, Cout}, {s[0], s[2], s[3], s[1]}, grad.offset()));
             rows = make_view(rows, {g.B * g.L(), Cout}, {Cout, 1}, rows.offset());
             auto r = blas::linear_rows_backward(rows, cols, sw.get(), n.needs_input_grad(0),
                                                 n.needs_input_grad(1), n.needs_input_grad(2));
             Tensor dx, dw;
             if (r.dx.defined()) {
               if (fast) {
                 dx = unpatchify_values(make_view(r.dx, {g.B, g.L(), g.K()},
                                                  contiguous_strides({g.B, g.L(), g.K()}), 0),
                                        g.stride, g.C, g.H, g.W);
               } else if (channels_last) {
                 Tensor mem = empty({g.B, g.H, g.W, g.C}, r.dx.dtype());
                 PW_DISPATCH(mem.dtype(), [&] {
                   col2im_channels_last<scalar_t>(r.dx.data<scalar_t>(), g, mem.data<scalar_t>());
                 });
                 dx = permute_view(mem, {0, 3, 1, 2});
               } else {
                 dx = empty({g.B, g.C, g.H, g.W}, r.dx.dtype());
                 PW_DISPATCH(dx.dtype(), [&] {
                   col2im<scalar_t>(r.dx.data<scalar_t>(), g, dx.data<scalar_t>());
                 });
               }
             }
             if (r.dw.defined() && channels_last)  // (Cout, kH, kW, C) -> (Cout, C, kH, kW)
               dw = copy_contiguous(
                   permute_view(make_view(r.dw, {Cout, g.kH, g.kW, g.C},
                                          contiguous_strides({Cout, g.kH, g.kW, g.C}), 0),
                                {0, 3, 1, 2}));
             else if (r.dw.defined())
               dw = make_view(r.dw, n.input_shapes[1], contiguous_strides(n.input_shapes[1]), 0);
             return {dx, dw, r.db};
           });
  return out;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, std::int64_t stride,
              std::int64_t padding) {
  return conv2d_impl(x, weight, bias, stride, padding, true);
}

Tensor conv2d_im2col(const Tensor& x, const Tensor& weight, const Tensor& bias, std::int64_t stride,
                     std::int64_t padding) {
  return conv2d_impl(x, weight, bias, stride, padding, false);
}

Tensor patchify(const Tensor& x, std::int64_t patch) {
  check_patch_image("patchify", x.shape(), patch);
  Tensor out = patchify_values(x, patch);
  if (needs_grad({x}))
    record("patchify", out, {x},
           [patch, s = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {unpatchify_values(g, patch, s[1], s[2], s[3])};
           });
  return out;
}

Tensor unpatchify(const Tensor& patches, std::int64_t patch, std::int64_t height,
                  std::int64_t width) {
  const Shape& s = patches.shape();
  const bool ok = s.size() == 3 && patch > 0 && height % patch == 0 && width % patch == 0 &&
                  s[1] == (height / patch) * (width / patch) && s[2] % (patch * patch) == 0;
  PW_CHECK(ok, "[unpatchify] patches {} do not tile a {}x{} image with {}x{} patches", shape_str(s),
           height, width, patch, patch);
  const std::int64_t C = s[2] / (patch * patch);
  Tensor out = unpatchify_values(patches, patch, C, height, width);
  if (needs_grad({patches}))
    record("unpatchify", out, {patches},
           [patch](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {patchify_values(g, patch)};
           });
  return out;
}

}  // namespace pw
