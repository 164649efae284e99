// Pooling over the two spatial dims of (B, C, H, W) images, with torch.nn.functional's
// semantics. Forward kernels and backward rules live in ops/pool.cpp.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace pw {

// Max over kernel x kernel windows moved by `stride` (0 means stride = kernel) across x
// (B, C, H, W), padded by `padding` on every side with -inf (so padding never wins), as
// F.max_pool2d(x, kernel, stride, padding): output (B, C, Ho, Wo) with
// Ho = floor((H + 2 padding - kernel) / stride) + 1 (ceil_mode=False), padding at most
// kernel / 2. Ties go to the first maximum in row-major window order and a NaN wins, as in
// PyTorch; backward adds each output's gradient into that element (the saved argmax).
// Channels-last input, the (B, C, H, W) view of (B, H, W, C) memory that conv2d returns, gives a
// channels-last output (and gradient), so that the next conv and flatten(2).transpose(1, 2) to
// tokens read it in place; any other input gives a contiguous output.
Tensor max_pool2d(const Tensor& x, std::int64_t kernel, std::int64_t stride = 0,
                  std::int64_t padding = 0);

}  // namespace pw
