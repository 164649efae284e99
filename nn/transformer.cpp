#include "nn/transformer.h"

#include <cmath>

#include "nn/init.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/linear_gelu.h"
#include "ops/matmul.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace pw::nn {

Mlp::Mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, double drop, Generator& gen) {
  fc1 = register_module("fc1", std::make_shared<Linear>(in, hidden, true, gen));
  act = register_module("act", std::make_shared<GELU>());
  drop1 = register_module("drop1", std::make_shared<Dropout>(drop));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, out, true, gen));
  drop2 = register_module("drop2", std::make_shared<Dropout>(drop));
}

Tensor Mlp::forward(const Tensor& x) {
  // fc1 and an exact GELU run as one op (under autocast it writes fc2's bf16 operand directly)
  // unless a dropout between the GELU and fc2 is active.
  const bool fused = act->approximate == "none" && !(drop1->p > 0 && is_training());
  const Tensor h = fused ? linear_gelu(x, fc1->weight, fc1->bias)
                         : drop1->forward(act->forward(fc1->forward(x)));
  return drop2->forward(fc2->forward(h));
}

Attention::Attention(const AttentionConfig& c, Generator& gen) : cfg(c) {
  if (cfg.head_dim == 0) {
    PW_CHECK(cfg.heads > 0 && cfg.dim % cfg.heads == 0,
             "[Attention] width {} is not divisible by {} heads", cfg.dim, cfg.heads);
    cfg.head_dim = cfg.dim / cfg.heads;
  }
  const std::int64_t inner = cfg.heads * cfg.head_dim;
  qkv = register_module("qkv", std::make_shared<Linear>(cfg.dim, 3 * inner, cfg.qkv_bias, gen));
  if (cfg.heads == 1 && cfg.head_dim == cfg.dim)
    proj = register_module("proj", std::make_shared<Identity>());
  else
    proj = register_module("proj", std::make_shared<Linear>(inner, cfg.dim, true, gen));
  proj_drop_layer = register_module("proj_drop", std::make_shared<Dropout>(cfg.proj_drop));
}

Tensor Attention::forward(const Tensor& x, const Tensor& mask) {
  PW_CHECK(x.dim() == 3 && x.shape()[2] == cfg.dim, "[Attention] expected input (B, N, {}), got {}",
           cfg.dim, shape_str(x.shape()));
  const std::int64_t B = x.shape()[0], N = x.shape()[1], H = cfg.heads, Dh = cfg.head_dim;
  // The packed kernel reads q, k, v out of the (B, N, 3*H*Dh) projection in place.
  AttentionResult r = scaled_dot_product_attention_packed(
      qkv->forward(x), H, mask, false, is_training() ? cfg.attn_drop : 0.0, std::nullopt,
      keep_attention, default_generator());
  if (keep_attention) last_attention = r.probs;
  // (B, H, N, Dh) -> (B, N, H*Dh)
  Tensor y = reshape(permute(r.output, {0, 2, 1, 3}), {B, N, H * Dh});
  return proj_drop_layer->forward(proj->forward(y));
}

TransformerBlock::TransformerBlock(const BlockConfig& c, Generator& gen) : cfg(c) {
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(cfg.attn.dim, cfg.eps));
  attn = register_module("attn", std::make_shared<Attention>(cfg.attn, gen));
  drop_path1 = register_module("drop_path1", std::make_shared<DropPath>(cfg.drop_path));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(cfg.attn.dim, cfg.eps));
  mlp = register_module(
      "mlp", std::make_shared<Mlp>(cfg.attn.dim, cfg.mlp_hidden, cfg.attn.dim, cfg.drop, gen));
  drop_path2 = register_module("drop_path2", std::make_shared<DropPath>(cfg.drop_path));
}

Tensor TransformerBlock::forward(const Tensor& x) {
  if (cfg.pre_norm) {
    Tensor h = add(x, drop_path1->forward(attn->forward(norm1->forward(x))));
    return add(h, drop_path2->forward(mlp->forward(norm2->forward(h))));
  }
  Tensor h = norm1->forward(add(x, drop_path1->forward(attn->forward(x))));
  return norm2->forward(add(h, drop_path2->forward(mlp->forward(h))));
}

Tensor sequence_pool(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const bool ok = x.dim() == 3 && weight.shape() == Shape{1, x.shape()[2]} &&
                  (!bias.defined() || bias.shape() == Shape{1});
  PW_CHECK(ok,
           "[sequence_pool] expected x (B, N, D), weight (1, D) and bias (1), got {}, {} and {}",
           shape_str(x.shape()), shape_str(weight.shape()),
           bias.defined() ? shape_str(bias.shape()) : "none");
  const Tensor a = softmax(linear(x, weight, bias), 1);  // (B, N, 1)
  return squeeze(matmul(transpose(a, 1, 2), x), 1);      // (B, 1, D) -> (B, D)
}

SequencePool::SequencePool(std::int64_t dim, Generator& gen) {
  weight = register_parameter("weight", empty({1, dim}));
  init::trunc_normal_(weight, 0.02, gen);
  bias = register_parameter("bias", zeros({1}));
}

Conv2d::Conv2d(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
               std::int64_t padding, bool has_bias, Generator& gen)
    : stride(stride), padding(padding) {
  weight = register_parameter("weight", empty({out, in, kernel, kernel}));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * kernel * kernel));
  init::uniform_(weight, -bound, bound, gen);
  if (has_bias) {
    bias = register_parameter("bias", empty({out}));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, stride, padding);
}

PatchEmbedding::PatchEmbedding(std::int64_t image_size, std::int64_t patch, std::int64_t channels,
                               std::int64_t dim, Generator& gen)
    : image_size(image_size), patch(patch), channels(channels), dim(dim) {
  PW_CHECK(patch > 0 && image_size % patch == 0,
           "[PatchEmbedding] image size {} is not divisible by patch {}", image_size, patch);
  proj =
      register_module("proj", std::make_shared<Conv2d>(channels, dim, patch, patch, 0, true, gen));
}

Tensor PatchEmbedding::forward(const Tensor& x) {
  PW_CHECK(x.dim() == 4 && x.shape()[1] == channels,
           "[PatchEmbedding] expected (B, {}, H, W), got {}", channels, shape_str(x.shape()));
  Tensor y = proj->forward(x);  // (B, D, H/P, W/P)
  const std::int64_t B = y.shape()[0];
  return transpose(reshape(y, {B, dim, -1}), 1, 2);  // (B, N, D)
}

}  // namespace pw::nn
