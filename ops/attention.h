// Fused scaled dot-product attention (ops/attention.cpp).
#pragma once
#include <cstdint>
#include <optional>

#include "core/random.h"
#include "core/tensor.h"

namespace pw {

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
