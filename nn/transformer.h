// Transformer building blocks with timm's VisionTransformer parameter names: Mlp (fc1, fc2),
// Attention (qkv, proj), TransformerBlock (norm1, attn, norm2, mlp), PatchEmbedding (proj);
// and CCT's sequence pooling (SequencePool: weight, bias).
#pragma once
#include <memory>

#include "nn/layers.h"

namespace pw::nn {

// fc1 -> activation -> dropout -> fc2 -> dropout.
class Mlp : public Module {
 public:
  Mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, double drop = 0.0,
      Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Mlp"; }

  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<GELU> act;
  std::shared_ptr<Dropout> drop1, drop2;
};

struct AttentionConfig {
  std::int64_t dim = 256;     // D, the model width
  std::int64_t heads = 4;     // H
  std::int64_t head_dim = 0;  // Dh; 0 means D / H
  bool qkv_bias = true;
  double attn_drop = 0.0;
  double proj_drop = 0.0;
};

// Multi-head self-attention on (B, N, D) with a fused qkv projection whose rows are q, k, v,
// each with its heads contiguous (timm's layout). When one head spans the whole width there
// is no output projection (proj is Identity), as some ViT code does.
class Attention : public Module {
 public:
  explicit Attention(const AttentionConfig& cfg, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }
  // `mask` is additive, broadcast to (B, H, N, N).
  Tensor forward(const Tensor& x, const Tensor& mask);
  std::string type_name() const override { return "Attention"; }

  AttentionConfig cfg;
  std::shared_ptr<Linear> qkv;
  std::shared_ptr<Module> proj;  // Linear, or Identity when there is one full-width head
  std::shared_ptr<Dropout> proj_drop_layer;
  // When set, forward keeps the attention probabilities (B, H, N, N) in last_attention.
  bool keep_attention = false;
  Tensor last_attention;
};

struct BlockConfig {
  AttentionConfig attn;
  std::int64_t mlp_hidden = 512;
  double drop = 0.0;       // dropout after the MLP layers
  double drop_path = 0.0;  // stochastic depth of both residual branches
  bool pre_norm = true;    // x + f(norm(x)); post-norm is norm(x + f(x))
  double eps = 1e-6;
};

class TransformerBlock : public Module {
 public:
  explicit TransformerBlock(const BlockConfig& cfg, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "TransformerBlock"; }

  BlockConfig cfg;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Attention> attn;
  std::shared_ptr<Mlp> mlp;
  std::shared_ptr<DropPath> drop_path1, drop_path2;
};

// A strided convolution with kernel = stride = patch: (B, C, H, W) -> (B, N, D).
class PatchEmbedding : public Module {
 public:
  PatchEmbedding(std::int64_t image_size, std::int64_t patch, std::int64_t channels,
                 std::int64_t dim, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "PatchEmbedding"; }
  std::int64_t num_patches() const { return (image_size / patch) * (image_size / patch); }

  std::int64_t image_size, patch, channels, dim;
  std::shared_ptr<struct Conv2d> proj;
};

// Sequence pooling (CCT's SeqPool): the tokens' mean weighted by a softmax over the tokens of
// one learned score each, for x (B, N, D), weight (1, D), bias (1):
//   a = softmax(x weight^T + bias, over N) (B, N, 1),  out = a^T x (B, D).
// Composed of linear, softmax and matmul (each one node with its own backward).
Tensor sequence_pool(const Tensor& x, const Tensor& weight, const Tensor& bias);

// sequence_pool with its Linear(D, 1) parameters, weight (1, D) and bias (1): trunc_normal(0.02)
// weight and zero bias, as CCT initialises its Linear layers.
class SequencePool : public Module {
 public:
  explicit SequencePool(std::int64_t dim, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override { return sequence_pool(x, weight, bias); }
  std::string type_name() const override { return "SequencePool"; }

  Tensor weight, bias;
};

// Conv2d layer with PyTorch's default init; weight (Cout, Cin, k, k).
struct Conv2d : public Module {
  Conv2d(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride = 1,
         std::int64_t padding = 0, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }

  Tensor weight, bias;
  std::int64_t stride, padding;
};

}  // namespace pw::nn
