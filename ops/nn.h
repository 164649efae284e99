// Neural-network operations (torch.nn.functional semantics and defaults), each one graph node
// with a fused forward kernel and its backward rule.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace pw {

// ---- matrix products ----
// a @ b: 1-D/2-D as torch.matmul, and batched with broadcast batch dims; transposed views
// go to BLAS with its transpose flags instead of being copied.
Tensor matmul(const Tensor& a, const Tensor& b);
// x @ weight^T + bias for x of any leading shape (..., in); weight is (out, in) as in PyTorch.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// gelu(linear(x, weight, bias)), an MLP's first half. Under autocast it is one fused node whose
// output is bfloat16, the operand of the GEMM that follows (ops/linear_gelu.cpp); otherwise
// exactly the two ops.
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- activations ----
// Exact GELU 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation when approximate = "tanh".
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
// x * sigmoid(x).
Tensor silu(const Tensor& x);

// ---- softmax and losses ----
// exp(x - max) / sum along dim; backward from the saved output.
Tensor softmax(const Tensor& x, std::int64_t dim);
// x - logsumexp(x) along dim; backward from the saved output.
Tensor log_softmax(const Tensor& x, std::int64_t dim);
enum class Reduction { None, Mean, Sum };
// Cross-entropy of logits (B, C) with class indices (B) given as a float tensor of integer
// values, fused with log_softmax; label_smoothing as torch.nn.functional.cross_entropy.
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     Reduction reduction = Reduction::Mean, double label_smoothing = 0.0);
// Same with probability (soft) targets of shape (B, C).
Tensor cross_entropy_soft(const Tensor& logits, const Tensor& target_probs,
                          Reduction reduction = Reduction::Mean, double label_smoothing = 0.0);
// Negative log-likelihood of log-probabilities (B, C) and class indices (B).
Tensor nll_loss(const Tensor& log_probs, const Tensor& target,
                Reduction reduction = Reduction::Mean);
// (input - target)^2 reduced; input and target have the same shape, both get gradients.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);

// ---- normalisation and regularisation ----
// Normalises over the trailing dims given by normalized_shape; weight/bias may be undefined.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Zeroes elements with probability p and scales the rest by 1/(1-p) when training.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());
// Stochastic depth: drops whole samples (dim 0) of a residual branch, scaled by 1/(1-p).
Tensor drop_path(const Tensor& x, double p, bool training, Generator& gen = default_generator());

// ---- convolution and patches ----
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

// ---- attention ----
struct AttentionResult {
  Tensor output;  // (B, H, N, Dh)
  Tensor probs;   // (B, H, Nq, Nk) probabilities before dropout, when return_probs (no grad)
};
// softmax(q k^T * scale + mask) v for q (B, H, Nq, Dh), k (B, H, Nk, Dh), v (B, H, Nk, Dv) with
// one fused forward kernel and one fused backward kernel, parallel over batch x heads. q/k/v
// may be strided views (read in place). `mask` is additive (same dtype, broadcast to
// (B, H, Nq, Nk), treated as a constant: no gradient) or boolean-valued (1 = keep) when
// mask_is_bool; a fully masked row gives zeros. scale defaults to 1/sqrt(Dh). The output is
// a (B, H, Nq, Dv) view of (B, Nq, H, Dv) memory, so transpose(1, 2) to merge heads is free.
AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& mask = Tensor(),
                                             bool mask_is_bool = false, double dropout_p = 0.0,
                                             std::optional<double> scale = {},
                                             bool return_probs = false,
                                             Generator& gen = default_generator());

// The same on a packed qkv projection (B, N, 3*H*Dh) whose rows hold q, k, v, each with its
// heads contiguous (timm's layout): q, k and v are read in place and their gradients are
// written into one buffer shaped like qkv, so splitting the projection costs nothing.
AttentionResult scaled_dot_product_attention_packed(
    const Tensor& qkv, std::int64_t heads, const Tensor& mask = Tensor(), bool mask_is_bool = false,
    double dropout_p = 0.0, std::optional<double> scale = {}, bool return_probs = false,
    Generator& gen = default_generator());

}  // namespace pw
