// linear_gelu(x, w, b) = gelu(linear(x, w, b)), the first half of a transformer MLP. Without
// autocast it is exactly those two ops. Under autocast it is one node whose output is the
// bfloat16 operand of the next GEMM (fc2): the GEMM with its bias writes h (float32, saved for
// backward), and one pass over h writes gelu(h) in bfloat16; backward makes one pass over g and
// h that writes dh = g gelu'(h) rounded to bfloat16 for the two GEMMs and sums the bias
// gradient from dh unrounded. (oneDNN 2.6's GELU post-op was measured slower than this pass:
// 17.2 ms against 6.3 ms for the GEMM alone at (8320, 256) x (256, 512) on 2 Xeon cores.)
// Against the unfused ops this removes, per MLP, a float32 write and read of h's size in
// forward and in backward, and the separate casts for the GEMMs.
#include "ops/linear_gelu.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/autocast.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/activation.h"
#include "ops/blas.h"
#include "ops/matmul.h"
#include "ops/nn_kernels.h"

namespace pw {
namespace {

// Rows are handled in blocks of this many elements, through a per-thread float32 buffer.
constexpr std::int64_t kBlock = 4096;

// y (bfloat16) = gelu(h) over n elements.
void gelu_to_bf16(const float* h, bfloat16* y, std::int64_t n) {
  parallel_for((n + kBlock - 1) / kBlock, 4, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<float> tmp(static_cast<std::size_t>(kBlock));
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t lo = b * kBlock, len = std::min(kBlock, n - lo);
      kernels::gelu_forward(h + lo, tmp.data(), len);
      float_to_bfloat16(tmp.data(), y + lo, len);
    }
  });
}

// dh = g gelu'(h) for (R, C) rows, rounded to bfloat16 into dh_bf16, and db = column sums of dh.
void gelu_backward_to_bf16(const float* g, const float* h, bfloat16* dh_bf16, float* db,
                           std::int64_t R, std::int64_t C) {
  const int threads = R * C >= kParallelGrain && !omp_in_parallel() ? omp_get_max_threads() : 1;
  std::vector<float> partial(static_cast<std::size_t>(threads * C), 0.0f);
  const std::int64_t rows_per_block = std::max<std::int64_t>(1, kBlock / C);
#pragma omp parallel num_threads(threads)
  {
    float* acc = partial.data() + omp_get_thread_num() * C;
    std::vector<float> tmp(static_cast<std::size_t>(rows_per_block * C));
#pragma omp for schedule(static)
    for (std::int64_t r0 = 0; r0 < R; r0 += rows_per_block) {
      const std::int64_t rows = std::min(rows_per_block, R - r0), off = r0 * C;
      kernels::gelu_backward(g + off, h + off, tmp.data(), rows * C);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < C; ++c) acc[c] += tmp[r * C + c];
      float_to_bfloat16(tmp.data(), dh_bf16 + off, rows * C);
    }
  }
  std::fill(db, db + C, 0.0f);
  for (int t = 0; t < threads; ++t)
    for (std::int64_t c = 0; c < C; ++c) db[c] += partial[t * C + c];
}

}  // namespace

Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const bool fuse = Autocast::is_enabled() && weight.dtype() == DType::Float32 &&
                    (x.dtype() == DType::Float32 || x.dtype() == DType::BFloat16) &&
                    bias.defined() && bias.dtype() == DType::Float32 && x.dim() >= 1 &&
                    weight.dim() == 2 && x.shape().back() == weight.shape()[1];
  if (!fuse) return gelu(linear(x, weight, bias));
  auto [x2, w] = blas::gemm_operands(blas::rows_of(x), weight);
  if (!x2.is_contiguous()) x2 = copy_contiguous(x2);
  const std::int64_t R = x2.shape()[0], out_f = w.shape()[0];
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor y = empty(out_shape, DType::BFloat16);
  if (R == 0) return y;
  Tensor h = blas::linear_rows(x2, w, bias);  // (R, out) float32
  gelu_to_bf16(h.data<float>(), y.data<bfloat16>(), h.numel());
  if (!needs_grad({x, weight, bias})) return y;
  record("linear_gelu", y, {x, weight, bias},
         [sx = SavedTensor(x2), sw = SavedTensor(w), sh = SavedTensor(h), x_shape = x.shape()](
             const Tensor& g_in, const Node& n) -> std::vector<Tensor> {
           const Tensor x2 = sx.get(), w = sw.get(), h = sh.get();
           const Tensor g = copy_contiguous(g_in, DType::Float32);
           const std::int64_t R = h.shape()[0], C = h.shape()[1];
           Tensor dh = empty({R, C}, DType::BFloat16), db = empty({C});
           gelu_backward_to_bf16(g.data<float>(), h.data<float>(), dh.data<bfloat16>(),
                                 db.data<float>(), R, C);
           Tensor dx, dw;
           if (n.needs_input_grad(0)) {
             dx = blas::matmul_values(dh, w);  // (R, out) @ (out, in)
             dx = make_view(dx, x_shape, contiguous_strides(x_shape), 0);
           }
           if (n.needs_input_grad(1)) {
             // (out, R) @ (R, in): dh read transposed through its strides.
             dw = blas::matmul_values(make_view(dh, {C, R}, {1, C}, 0), x2);
           }
           return {dx, dw, n.needs_input_grad(2) ? db : Tensor()};
         });
  return y;
}

}  // namespace pw
