// Convolution and image patches (ops/conv.cpp).
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace pw {

// NCHW convolution; weight (Cout, Cin, kH, kW). Kernel == stride with no padding takes the
// patch-embedding fast path: one reshape and one GEMM.
// The output is a (B, Cout, Ho, Wo) view of channels-last memory (B, Ho, Wo, Cout), so that
// flatten(2).transpose(1, 2) into (B, N, Cout) tokens is free.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              std::int64_t stride = 1, std::int64_t padding = 0);
// conv2d always through the general im2col path (the fast path's reference in tests).
Tensor conv2d_im2col(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                     std::int64_t stride = 1, std::int64_t padding = 0);
// (B, C, H, W) -> (B, N, C*P*P), patches in row-major order, each in the conv weight's
// (c, y, x) order.
Tensor patchify(const Tensor& x, std::int64_t patch);
// Inverse of patchify for an image of the given height and width.
Tensor unpatchify(const Tensor& patches, std::int64_t patch, std::int64_t height,
                  std::int64_t width);

}  // namespace pw
