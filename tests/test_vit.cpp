// The Vision Transformer: presets, timm's state-dict keys and shapes, config validation.
#include <catch2/catch.hpp>
#include <map>

#include "models/vit.h"

using namespace pw;
using namespace pw::models;

namespace {
// timm's VisionTransformer(img_size=32, patch_size=P, class_token=True, global_pool='token',
// qkv_bias=True) state dict: the key set and shapes written out from timm's module structure.
std::map<std::string, Shape> timm_keys(const ViTConfig& c) {
  const std::int64_t D = c.dim, T = c.num_tokens(), P = c.patch_size, M = c.mlp_dim;
  std::map<std::string, Shape> k{{"cls_token", {1, 1, D}},
                                 {"pos_embed", {1, T, D}},
                                 {"patch_embed.proj.weight", {D, 3, P, P}},
                                 {"patch_embed.proj.bias", {D}},
                                 {"norm.weight", {D}},
                                 {"norm.bias", {D}},
                                 {"head.weight", {10, D}},
                                 {"head.bias", {10}}};
  for (std::int64_t i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    k[b + "norm1.weight"] = {D};
    k[b + "norm1.bias"] = {D};
    k[b + "attn.qkv.weight"] = {3 * D, D};
    k[b + "attn.qkv.bias"] = {3 * D};
    k[b + "attn.proj.weight"] = {D, D};
    k[b + "attn.proj.bias"] = {D};
    k[b + "norm2.weight"] = {D};
    k[b + "norm2.bias"] = {D};
    k[b + "mlp.fc1.weight"] = {M, D};
    k[b + "mlp.fc1.bias"] = {M};
    k[b + "mlp.fc2.weight"] = {D, M};
    k[b + "mlp.fc2.bias"] = {D};
  }
  return k;
}
}  // namespace

TEST_CASE("each preset's state dict has exactly timm's keys and shapes", "[vit]") {
  const std::map<std::string, std::pair<double, double>> params{
      {"nano", {0.7e6, 0.9e6}}, {"lite", {3.5e6, 3.9e6}}, {"small", {6.0e6, 6.6e6}}};
  for (const auto& name : vit_preset_names()) {
    INFO(name);
    const ViTConfig cfg = vit_preset(name);
    VisionTransformer m(cfg);
    std::map<std::string, Shape> got;
    for (auto& [k, t] : m.state_dict()) got[k] = t.shape();
    CHECK(got == timm_keys(cfg));
    const auto n = static_cast<double>(m.num_parameters());
    CHECK(n > params.at(name).first);
    CHECK(n < params.at(name).second);
  }
}

TEST_CASE("ViT configs round trip through JSON and reject bad fields", "[vit]") {
  ViTConfig c = vit_preset("nano");
  c.drop_path = 0.1;
  c.pool = "mean";
  const ViTConfig back = config_from_json(to_json(c));
  CHECK(to_json(back) == to_json(c));
  CHECK_THROWS_WITH(config_from_json({{"depht", 3}}), "[ViTConfig] unknown config field 'depht'");
  CHECK_THROWS_WITH(config_from_json({{"patch_size", 5}}),
                    "[ViTConfig] image_size 32 is not a multiple of patch_size 5");
  CHECK_THROWS_WITH(config_from_json({{"dim", "wide"}}),
                    Catch::Contains("field 'dim' has the wrong type"));
  CHECK_THROWS_WITH(vit_preset("huge"), Catch::Contains("unknown preset 'huge'"));
}

TEST_CASE("resizing the position embedding keeps the prefix and interpolates the grid", "[vit]") {
  // A 2x2 grid with one class token; values chosen so that bilinear resizing is checkable
  // by hand: D=1, grid [[0, 1], [2, 3]].
  Tensor pos = tensor({9, 0, 1, 2, 3}, {1, 5, 1});
  Tensor same = resize_pos_embed(pos, 1, 2, "bilinear");
  CHECK(same.to_vector() == pos.to_vector());
  Tensor up = resize_pos_embed(pos, 1, 4, "bilinear");
  auto v = up.to_vector();
  REQUIRE(v.size() == 17);
  CHECK(v[0] == 9.0f);
  // align_corners=False: output x=1 samples source 0.25 -> 0.25; row 0 is [0, .25, .75, 1].
  CHECK(v[1] == Approx(0.0));
  CHECK(v[2] == Approx(0.25));
  CHECK(v[3] == Approx(0.75));
  CHECK(v[4] == Approx(1.0));
  // Bicubic keeps a constant field constant (the kernel weights sum to one).
  Tensor flat = full({1, 17, 3}, 0.5);
  for (float x : resize_pos_embed(flat, 1, 6, "bicubic").to_vector()) CHECK(x == Approx(0.5));
}
