#include "models/vit.h"

#include <cmath>
#include <tuple>

#include "core/json.h"
#include "nn/init.h"
#include "ops/broadcast.h"
#include "ops/elementwise.h"
#include "ops/join.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace pw::models {

std::int64_t ViTConfig::grid_size() const {
  if (stem == "conv") return nn::ConvTokenizer::sides(conv_stem(), image_size).back();
  return image_size / patch_size;
}

nn::ConvTokenizerConfig ViTConfig::conv_stem() const {
  return {channels, dim, stem_layers, stem_channels, stem_kernel, stem_stride, stem_pool == "max"};
}

void ViTConfig::validate() const {
  using L = ViTLimits;
  PW_CHECK(stem == "patch" || stem == "conv",
           "[ViTConfig] stem must be 'patch' or 'conv', got '{}'", stem);
  // Each size within its bounds first, so that the products below cannot overflow.
  for (const auto& [field, value, low, high] :
       {std::tuple<const char*, std::int64_t, std::int64_t, std::int64_t>{"image_size", image_size,
                                                                          1, L::image_size},
        {"channels", channels, 1, L::channels},
        {"num_classes", num_classes, 1, L::num_classes},
        {"dim", dim, 1, L::dim},
        {"depth", depth, 1, L::depth},
        {"heads", heads, 1, L::heads},
        {"head_dim", head_dim, 0, L::head_dim},
        {"mlp_dim", mlp_dim, 1, L::mlp_dim},
        {"head_hidden", head_hidden, 0, L::mlp_dim},
        {"stem_layers", stem_layers, 1, L::stem_layers},
        {"stem_channels", stem_channels, 1, L::stem_channels},
        {"stem_kernel", stem_kernel, 1, L::stem_kernel},
        {"stem_stride", stem_stride, 1, L::stem_stride}})
    PW_CHECK(value >= low && value <= high, "[ViTConfig] {} must be in [{}, {}], got {}", field,
             low, high, value);
  if (stem == "patch")
    PW_CHECK(patch_size > 0 && patch_size <= image_size && image_size % patch_size == 0,
             "[ViTConfig] image_size {} is not a multiple of patch_size {}", image_size,
             patch_size);
  PW_CHECK(head_dim > 0 || dim % heads == 0, "[ViTConfig] dim {} is not divisible by {} heads", dim,
           heads);
  PW_CHECK(pool == "cls" || pool == "mean" || pool == "attn",
           "[ViTConfig] pool must be 'cls', 'mean' or 'attn', got '{}'", pool);
  PW_CHECK(pos_embed == "learn" || pos_embed == "sincos" || pos_embed == "none",
           "[ViTConfig] pos_embed must be 'learn', 'sincos' or 'none', got '{}'", pos_embed);
  PW_CHECK(pos_embed != "sincos" || dim % 4 == 0,
           "[ViTConfig] pos_embed 'sincos' needs dim divisible by 4, got dim {}", dim);
  PW_CHECK(stem_pool == "max" || stem_pool == "none",
           "[ViTConfig] stem_pool must be 'max' or 'none', got '{}'", stem_pool);
  for (double p : {dropout, attn_dropout, emb_dropout, drop_path})
    PW_CHECK(p >= 0 && p < 1, "[ViTConfig] dropout rates must be in [0, 1), got {}", p);
  PW_CHECK(eps > 0 && eps < 1, "[ViTConfig] eps must be in (0, 1), got {}", eps);
  PW_CHECK(num_patches() <= L::tokens,
           "[ViTConfig] {} tokens ({}x{} grid) is more than the limit of {}", num_patches(),
           grid_size(), grid_size(), L::tokens);
  const std::int64_t params = parameter_count();
  PW_CHECK(params <= L::parameters,
           "[ViTConfig] the model would have {} parameters, more than the limit of {}", params,
           L::parameters);
}

std::vector<std::pair<std::string, Shape>> ViTConfig::state_dict_shapes() const {
  const std::int64_t D = dim, inner = heads * (head_dim > 0 ? head_dim : dim / heads);
  std::vector<std::pair<std::string, Shape>> out;
  auto linear = [&](const std::string& name, std::int64_t in, std::int64_t out_features,
                    bool bias) {
    out.emplace_back(name + ".weight", Shape{out_features, in});
    if (bias) out.emplace_back(name + ".bias", Shape{out_features});
  };
  auto layer_norm = [&](const std::string& name) {
    out.emplace_back(name + ".weight", Shape{D});
    out.emplace_back(name + ".bias", Shape{D});
  };
  if (stem == "conv") {
    std::int64_t in = channels;
    for (std::int64_t i = 0; i < stem_layers; ++i) {
      const std::int64_t o = i + 1 < stem_layers ? stem_channels : D;
      out.emplace_back(fmt::format("patch_embed.conv.{}.weight", i),
                       Shape{o, in, stem_kernel, stem_kernel});
      in = o;
    }
  } else {
    out.emplace_back("patch_embed.proj.weight", Shape{D, channels, patch_size, patch_size});
    out.emplace_back("patch_embed.proj.bias", Shape{D});
  }
  if (pool == "cls") out.emplace_back("cls_token", Shape{1, 1, D});
  if (pos_embed == "learn") out.emplace_back("pos_embed", Shape{1, num_tokens(), D});
  for (std::int64_t i = 0; i < depth; ++i) {
    const std::string b = fmt::format("blocks.{}.", i);
    layer_norm(b + "norm1");
    linear(b + "attn.qkv", D, 3 * inner, qkv_bias);
    // One head spanning the whole width has no output projection (nn::Attention).
    if (!(heads == 1 && inner == D)) linear(b + "attn.proj", inner, D, true);
    layer_norm(b + "norm2");
    linear(b + "mlp.fc1", D, mlp_dim, true);
    linear(b + "mlp.fc2", mlp_dim, D, true);
  }
  layer_norm("norm");
  if (pool == "attn") linear("attention_pool", D, 1, true);
  if (head_hidden > 0) {
    linear("head.fc1", D, head_hidden, true);
    linear("head.fc2", head_hidden, num_classes, true);
  } else {
    linear("head", D, num_classes, true);
  }
  return out;
}

std::int64_t ViTConfig::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& [name, shape] : state_dict_shapes()) n += numel_of(shape);
  return n;
}

ViTConfig vit_preset(const std::string& name) {
  ViTConfig c;
  if (name == "nano") {
    c.dim = 128, c.depth = 6, c.heads = 4, c.mlp_dim = 256;
  } else if (name == "lite") {
    c.dim = 256, c.depth = 7, c.heads = 4, c.mlp_dim = 512;
  } else if (name == "small") {
    c.dim = 384, c.depth = 7, c.heads = 12, c.mlp_dim = 384;
  } else {
    fail("[vit_preset] unknown preset '{}' (choose nano, lite or small)", name);
  }
  return c;
}

std::vector<std::string> vit_preset_names() {
  return {"nano", "lite", "small"};
}

nlohmann::json to_json(const ViTConfig& c) {
  return {{"image_size", c.image_size},
          {"patch_size", c.patch_size},
          {"channels", c.channels},
          {"num_classes", c.num_classes},
          {"dim", c.dim},
          {"depth", c.depth},
          {"heads", c.heads},
          {"head_dim", c.head_dim},
          {"mlp_dim", c.mlp_dim},
          {"pool", c.pool},
          {"qkv_bias", c.qkv_bias},
          {"dropout", c.dropout},
          {"attn_dropout", c.attn_dropout},
          {"emb_dropout", c.emb_dropout},
          {"drop_path", c.drop_path},
          {"pre_norm", c.pre_norm},
          {"head_hidden", c.head_hidden},
          {"eps", c.eps},
          {"pos_embed", c.pos_embed},
          {"stem", c.stem},
          {"stem_layers", c.stem_layers},
          {"stem_channels", c.stem_channels},
          {"stem_kernel", c.stem_kernel},
          {"stem_stride", c.stem_stride},
          {"stem_pool", c.stem_pool}};
}

ViTConfig config_from_json(const nlohmann::json& j, ViTConfig c) {
  PW_CHECK(j.is_object(), "[ViTConfig] config must be a JSON object");
  const nlohmann::json known = to_json(c);
  for (const auto& [key, value] : j.items()) {
    PW_CHECK(known.contains(key), "[ViTConfig] unknown config field '{}'", key);
    const std::string field = fmt::format("[ViTConfig] field '{}' has the wrong type", key);
    try {
      if (key == "image_size")
        c.image_size = json_int64(value, field);
      else if (key == "patch_size")
        c.patch_size = json_int64(value, field);
      else if (key == "channels")
        c.channels = json_int64(value, field);
      else if (key == "num_classes")
        c.num_classes = json_int64(value, field);
      else if (key == "dim")
        c.dim = json_int64(value, field);
      else if (key == "depth")
        c.depth = json_int64(value, field);
      else if (key == "heads")
        c.heads = json_int64(value, field);
      else if (key == "head_dim")
        c.head_dim = json_int64(value, field);
      else if (key == "mlp_dim")
        c.mlp_dim = json_int64(value, field);
      else if (key == "pool")
        c.pool = value.get<std::string>();
      else if (key == "qkv_bias")
        c.qkv_bias = value.get<bool>();
      else if (key == "dropout")
        c.dropout = value.get<double>();
      else if (key == "attn_dropout")
        c.attn_dropout = value.get<double>();
      else if (key == "emb_dropout")
        c.emb_dropout = value.get<double>();
      else if (key == "drop_path")
        c.drop_path = value.get<double>();
      else if (key == "pre_norm")
        c.pre_norm = value.get<bool>();
      else if (key == "head_hidden")
        c.head_hidden = json_int64(value, field);
      else if (key == "eps")
        c.eps = value.get<double>();
      else if (key == "pos_embed")
        c.pos_embed = value.get<std::string>();
      else if (key == "stem")
        c.stem = value.get<std::string>();
      else if (key == "stem_layers")
        c.stem_layers = json_int64(value, field);
      else if (key == "stem_channels")
        c.stem_channels = json_int64(value, field);
      else if (key == "stem_kernel")
        c.stem_kernel = json_int64(value, field);
      else if (key == "stem_stride")
        c.stem_stride = json_int64(value, field);
      else if (key == "stem_pool")
        c.stem_pool = value.get<std::string>();
    } catch (const nlohmann::json::exception&) {
      fail("[ViTConfig] field '{}' has the wrong type: {}", key, value.dump());
    }
  }
  c.validate();
  return c;
}

ViTConfig apply_overrides(const ViTConfig& base, const std::vector<std::string>& key_values) {
  nlohmann::json j;
  for (const auto& kv : key_values) {
    const auto eq = kv.find('=');
    PW_CHECK(eq != std::string::npos && eq > 0, "[--model] expected key=value, got '{}'", kv);
    const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
    j[key] = nlohmann::json::accept(value) ? nlohmann::json::parse(value) : nlohmann::json(value);
  }
  return j.empty() ? base : config_from_json(j, base);
}

VisionTransformer::VisionTransformer(const ViTConfig& config, Generator& gen) : cfg(config) {
  cfg.validate();
  const std::int64_t D = cfg.dim;
  if (cfg.stem == "conv")
    patch_embed =
        register_module("patch_embed", std::make_shared<nn::ConvTokenizer>(cfg.conv_stem(), gen));
  else
    patch_embed = register_module(
        "patch_embed",
        std::make_shared<nn::PatchEmbedding>(cfg.image_size, cfg.patch_size, cfg.channels, D, gen));
  if (cfg.pool == "cls") {
    cls_token = register_parameter("cls_token", zeros({1, 1, D}));
    nn::init::normal_(cls_token, 0.0, 1e-6, gen);  // timm's init
  }
  if (cfg.pos_embed == "learn") {
    pos_embed = register_parameter("pos_embed", zeros({1, cfg.num_tokens(), D}));
    nn::init::trunc_normal_(pos_embed, 0.02, gen);
  } else if (cfg.pos_embed == "sincos") {
    pos_embed = sincos_pos_embed_2d(D, cfg.grid_size(), cfg.num_tokens() - cfg.num_patches());
  }
  pos_drop = register_module("pos_drop", std::make_shared<nn::Dropout>(cfg.emb_dropout));
  blocks = register_module("blocks", std::make_shared<nn::ModuleList<nn::TransformerBlock>>());
  for (std::int64_t i = 0; i < cfg.depth; ++i) {
    nn::BlockConfig b;
    b.attn = {D, cfg.heads, cfg.head_dim, cfg.qkv_bias, cfg.attn_dropout, cfg.dropout};
    b.mlp_hidden = cfg.mlp_dim;
    b.drop = cfg.dropout;
    // Stochastic depth rises linearly over the blocks (timm's dpr).
    b.drop_path = cfg.depth > 1
                      ? cfg.drop_path * static_cast<double>(i) / static_cast<double>(cfg.depth - 1)
                      : cfg.drop_path;
    b.pre_norm = cfg.pre_norm;
    b.eps = cfg.eps;
    blocks->push_back(std::make_shared<nn::TransformerBlock>(b, gen));
  }
  // Post-norm blocks end normalised already; timm keeps the final norm for pre-norm only.
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(D, cfg.eps));
  if (cfg.pool == "attn")
    attention_pool = register_module("attention_pool", std::make_shared<nn::SequencePool>(D, gen));
  head_drop = register_module("head_drop", std::make_shared<nn::Dropout>(cfg.dropout));
  if (cfg.head_hidden > 0)
    head = register_module(
        "head", std::make_shared<nn::Mlp>(D, cfg.head_hidden, cfg.num_classes, 0.0, gen));
  else
    head = register_module("head", std::make_shared<nn::Linear>(D, cfg.num_classes, true, gen));
  // timm's init_weights_vit_timm: every Linear gets trunc_normal(0.02) weights, zero bias.
  for (auto& [name, m] : named_modules())
    if (auto* lin = dynamic_cast<nn::Linear*>(m)) lin->timm_init(gen);
}

Tensor VisionTransformer::forward_features(const Tensor& x) {
  PW_CHECK(x.dim() == 4 && x.shape()[1] == cfg.channels && x.shape()[2] == cfg.image_size &&
               x.shape()[3] == cfg.image_size,
           "[VisionTransformer] expected input (B, {}, {}, {}), got {}", cfg.channels,
           cfg.image_size, cfg.image_size, shape_str(x.shape()));
  const std::int64_t B = x.shape()[0];
  Tensor t = patch_embed->forward(x);  // (B, N, D)
  if (cls_token.defined()) t = cat({expand(cls_token, {B, 1, cfg.dim}), t}, 1);
  if (pos_embed.defined()) t = add(t, pos_embed);
  t = pos_drop->forward(t);
  for (auto& blk : *blocks) t = blk->forward(t);
  t = norm->forward(t);
  if (cfg.pool == "cls") return squeeze(slice(t, 1, 0, 1), 1);  // (B, D)
  if (cfg.pool == "attn") return attention_pool->forward(t);
  return mean(t, {1});
}

Tensor VisionTransformer::forward(const Tensor& x) {
  return head->forward(head_drop->forward(forward_features(x)));
}

void VisionTransformer::keep_attention(bool on) {
  for (auto& blk : *blocks) {
    blk->attn->keep_attention = on;
    blk->attn->last_attention = Tensor();
  }
}

std::vector<Tensor> VisionTransformer::attention_maps() const {
  std::vector<Tensor> maps;
  for (auto& blk : *blocks) maps.push_back(blk->attn->last_attention);
  return maps;
}

double VisionTransformer::forward_flops() const {
  const double D = static_cast<double>(cfg.dim), T = static_cast<double>(cfg.num_tokens());
  const double N = static_cast<double>(cfg.num_patches());
  const double inner =
      static_cast<double>(cfg.heads * (cfg.head_dim ? cfg.head_dim : cfg.dim / cfg.heads));
  double macs = 0;
  if (cfg.stem == "conv") {
    // Each conv: (output side)^2 positions x out x in x k^2 (pooling and ReLU are not counted).
    const nn::ConvTokenizerConfig stem = cfg.conv_stem();
    const auto sides = nn::ConvTokenizer::sides(stem, cfg.image_size);
    std::int64_t in = cfg.channels;
    for (std::int64_t i = 0; i < stem.layers; ++i) {
      const std::int64_t out = i + 1 < stem.layers ? stem.hidden : stem.dim;
      const auto side = static_cast<double>(sides[static_cast<std::size_t>(i)]);
      macs += side * side * static_cast<double>(out * in * stem.kernel * stem.kernel);
      in = out;
    }
  } else {
    macs += N * static_cast<double>(cfg.patch_size * cfg.patch_size * cfg.channels) * D;
  }
  const bool has_proj = !(cfg.heads == 1 && inner == D);
  const double per_block = T * D * 3 * inner    // qkv
                           + 2 * T * T * inner  // q k^T and P v
                           + (has_proj ? T * inner * D : 0.0) +
                           2 * T * D * static_cast<double>(cfg.mlp_dim);
  macs += static_cast<double>(cfg.depth) * per_block;
  if (cfg.pool == "attn") macs += 2 * N * D;  // the scores x w^T, then the weighted sum
  const double C = static_cast<double>(cfg.num_classes);
  macs += cfg.head_hidden > 0
              ? D * static_cast<double>(cfg.head_hidden) + static_cast<double>(cfg.head_hidden) * C
              : D * C;
  return 2.0 * macs;
}

}  // namespace pw::models
