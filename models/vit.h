// The Vision Transformer (Dosovitskiy et al.), with timm's VisionTransformer parameter names
// and shapes so that its state dict loads into timm with strict=True.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/transformer.h"

namespace pw::models {

struct ViTConfig {
  std::int64_t image_size = 32;
  std::int64_t patch_size = 4;
  std::int64_t channels = 3;
  std::int64_t num_classes = 10;
  std::int64_t dim = 256;  // D
  std::int64_t depth = 7;
  std::int64_t heads = 4;     // H
  std::int64_t head_dim = 0;  // Dh; 0 means D / H
  std::int64_t mlp_dim = 512;
  std::string pool = "cls";  // "cls" (class token) or "mean" (mean of the patch tokens)
  bool qkv_bias = true;
  double dropout = 0.0;  // after MLP layers and before the head
  double attn_dropout = 0.0;
  double emb_dropout = 0.0;  // after adding the position embedding
  double drop_path = 0.0;    // stochastic depth, rising linearly to this over the blocks
  bool pre_norm = true;
  std::int64_t head_hidden = 0;  // > 0: an MLP head with one hidden layer of this width
  double eps = 1e-6;

  std::int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  std::int64_t num_tokens() const { return num_patches() + (pool == "cls" ? 1 : 0); }
  // Throws pw::Error naming the first inconsistent field.
  void validate() const;
};

// Named presets: "nano", "lite", "small" (see the README); throws on an unknown name.
ViTConfig vit_preset(const std::string& name);
std::vector<std::string> vit_preset_names();
nlohmann::json to_json(const ViTConfig& c);
// Reads the fields present in `j` over `base`; unknown keys are an error.
ViTConfig config_from_json(const nlohmann::json& j, ViTConfig base = {});
// Applies "key=value" overrides (as given to --model) over `base`: a value is read as JSON when
// it parses (numbers, true/false) and as a string otherwise.
ViTConfig apply_overrides(const ViTConfig& base, const std::vector<std::string>& key_values);

class VisionTransformer : public nn::Module {
 public:
  explicit VisionTransformer(const ViTConfig& cfg, Generator& gen = default_generator());
  // (B, C, H, W) normalised images -> (B, num_classes) logits.
  Tensor forward(const Tensor& x) override;
  // The pooled, normalised features before the head: (B, D).
  Tensor forward_features(const Tensor& x);
  std::string type_name() const override { return "VisionTransformer"; }
  // Keeps each block's attention probabilities for attention maps.
  void keep_attention(bool on);
  std::vector<Tensor> attention_maps() const;
  // Multiply-accumulate count of one forward pass on one image, x2 (FLOPs).
  double forward_flops() const;

  ViTConfig cfg;
  std::shared_ptr<nn::PatchEmbedding> patch_embed;
  Tensor cls_token;  // (1, 1, D), undefined with mean pooling
  Tensor pos_embed;  // (1, T, D)
  std::shared_ptr<nn::Dropout> pos_drop;
  std::shared_ptr<nn::ModuleList<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Dropout> head_drop;
  std::shared_ptr<nn::Module> head;  // Linear or Mlp
};

// Resizes a position embedding (1, prefix + G*G, D) to a new grid side (bicubic or bilinear
// interpolation of the patch part, prefix tokens kept), as for fine-tuning at another size.
Tensor resize_pos_embed(const Tensor& pos_embed, std::int64_t prefix_tokens, std::int64_t new_grid,
                        const std::string& mode = "bicubic");

}  // namespace pw::models
