// The Vision Transformer (Dosovitskiy et al.), with timm's VisionTransformer parameter names
// and shapes so that its state dict loads into timm with strict=True; and the pieces of the
// Compact Transformers (Hassani et al. 2021): a convolutional tokenizer, sequence pooling and
// no position embedding, whose parameters take the names below.
//
// State dict, for D = dim, C = channels, P = patch_size, T = num_tokens(), k = stem_kernel:
//   cls_token                         (1, 1, D)         pool=cls only
//   pos_embed                         (1, T, D)         pos_embed=learn only (sincos is
//                                                       recomputed from the config, not saved)
//   patch_embed.proj.weight / .bias   (D, C, P, P) / (D)                  stem=patch
//   patch_embed.conv.{i}.weight       (out_i, in_i, k, k), no bias        stem=conv, i <
//   stem_layers;
//                                     in_0 = C, out_i = stem_channels for i < stem_layers - 1,
//                                     the last out_i = D, in_i = out_{i-1}
//   blocks.{i}.norm1, .attn.qkv, .attn.proj, .norm2, .mlp.fc1, .mlp.fc2 (.weight, .bias)
//   norm.weight / .bias               (D)
//   attention_pool.weight / .bias     (1, D) / (1)      pool=attn only (CCT's name)
//   head.weight / .bias               (num_classes, D) / (num_classes); with head_hidden an Mlp:
//                                     head.fc1, head.fc2
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/stem.h"
#include "nn/transformer.h"

namespace pw::models {

struct ViTConfig {
  std::int64_t image_size = 32;
  std::int64_t patch_size = 4;  // stem=patch only
  std::int64_t channels = 3;
  std::int64_t num_classes = 10;
  std::int64_t dim = 256;  // D
  std::int64_t depth = 7;
  std::int64_t heads = 4;     // H
  std::int64_t head_dim = 0;  // Dh; 0 means D / H
  std::int64_t mlp_dim = 512;
  // The features the head sees: "cls" (the class token; timm's global_pool='token' with
  // class_token=True), "mean" (the mean of the tokens, no class token; timm's 'avg' with
  // class_token=False) or "attn" (CCT's sequence pooling, nn::SequencePool, after the final
  // norm, no class token; timm's 'map' is another attention pool, with a latent query).
  std::string pool = "cls";
  bool qkv_bias = true;
  double dropout = 0.0;  // after MLP layers and before the head
  double attn_dropout = 0.0;
  double emb_dropout = 0.0;  // after adding the position embedding
  double drop_path = 0.0;    // stochastic depth, rising linearly to this over the blocks
  bool pre_norm = true;
  std::int64_t head_hidden = 0;  // > 0: an MLP head with one hidden layer of this width
  double eps = 1e-6;
  // "learn" (a trained parameter; timm's pos_embed='learn'), "sincos" (MAE's fixed 2-D
  // sine-cosine, sincos_pos_embed_2d) or "none" (timm's pos_embed='none').
  std::string pos_embed = "learn";
  // The tokenizer: "patch" (P x P patches through one stride-P conv, timm's PatchEmbed) or
  // "conv" (nn::ConvTokenizer, CCT's convolutional tokenizer, with the stem_* fields below;
  // patch_size is ignored).
  std::string stem = "patch";
  std::int64_t stem_layers = 2;
  std::int64_t stem_channels = 64;  // width of every conv but the last, which outputs D
  std::int64_t stem_kernel = 3;
  std::int64_t stem_stride = 1;
  std::string stem_pool = "max";  // "max" (3x3, stride 2, padding 1 after each conv) or "none"

  // Side G of the square token grid the stem makes of an image.
  std::int64_t grid_size() const;
  // Tokens from the stem, G*G (timm's name, though a conv stem's tokens are not patches).
  std::int64_t num_patches() const { return grid_size() * grid_size(); }
  std::int64_t num_tokens() const { return num_patches() + (pool == "cls" ? 1 : 0); }
  // The stem_* fields as the tokenizer's config.
  nn::ConvTokenizerConfig conv_stem() const;
  // The (name, shape) of every tensor of the model's state dict, worked out from the config
  // without building the model (a file's tensors are checked against it before the model it
  // describes takes any memory).
  std::vector<std::pair<std::string, Shape>> state_dict_shapes() const;
  // The number of values in the state dict (trainable parameters).
  std::int64_t parameter_count() const;
  // Throws pw::Error naming the first inconsistent or out-of-bounds field (see ViTLimits).
  void validate() const;
};

// The upper bounds validate() enforces: generous for a ViT on a CPU, but finite, so that a
// config read from a file or a command line can neither overflow a size nor ask for more
// memory than a machine has.
struct ViTLimits {
  static constexpr std::int64_t image_size = 4096;
  static constexpr std::int64_t channels = 64;
  static constexpr std::int64_t num_classes = 100'000;
  static constexpr std::int64_t dim = 16'384;
  static constexpr std::int64_t depth = 1024;
  static constexpr std::int64_t heads = 1024;
  static constexpr std::int64_t head_dim = 4096;
  static constexpr std::int64_t mlp_dim = 65'536;  // also head_hidden
  static constexpr std::int64_t stem_layers = 16;
  static constexpr std::int64_t stem_channels = 4096;
  static constexpr std::int64_t stem_kernel = 31;
  static constexpr std::int64_t stem_stride = 16;
  static constexpr std::int64_t tokens = 65'536;       // a 256 x 256 grid
  static constexpr std::int64_t parameters = 1 << 28;  // 268M: 1 GiB of float32 weights
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
  std::shared_ptr<nn::Module> patch_embed;  // nn::PatchEmbedding or nn::ConvTokenizer
  Tensor cls_token;                         // (1, 1, D), pool=cls only
  // (1, T, D): a parameter (learn), a constant that is no parameter (sincos), or undefined.
  Tensor pos_embed;
  std::shared_ptr<nn::Dropout> pos_drop;
  std::shared_ptr<nn::ModuleList<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::SequencePool> attention_pool;  // pool=attn only
  std::shared_ptr<nn::Dropout> head_drop;
  std::shared_ptr<nn::Module> head;  // Linear or Mlp
};

// MAE's fixed 2-D sine-cosine position embedding (get_2d_sincos_pos_embed) for a G x G grid of
// tokens in row-major order after `prefix_tokens` rows of zeros: (1, prefix + G*G, D). For the
// token in row r, column c, with omega_i = 1 / 10000^(i / (D/4)), i < D/4:
//   [sin(c omega), cos(c omega), sin(r omega), cos(r omega)], each block D/4 wide.
// (MAE's emb_h reads grid[0], which its meshgrid(grid_w, grid_h) fills with column indices: the
// first half encodes the column.) D must be a multiple of 4.
Tensor sincos_pos_embed_2d(std::int64_t dim, std::int64_t grid, std::int64_t prefix_tokens);

// Resizes a position embedding (1, prefix + G*G, D) to a new grid side (bicubic or bilinear
// interpolation of the patch part, prefix tokens kept), as for fine-tuning at another size.
Tensor resize_pos_embed(const Tensor& pos_embed, std::int64_t prefix_tokens, std::int64_t new_grid,
                        const std::string& mode = "bicubic");

}  // namespace pw::models
