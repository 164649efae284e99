// The Vision Transformer: presets, timm's state-dict keys and shapes, config validation; the
// conv stem's token grid, sequence pooling's and the sin-cos embedding's place in the model.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>

#include "core/autograd.h"
#include "models/vit.h"
#include "nn_test_util.h"

using namespace pw;
using namespace pw::models;
using pw::testing::max_abs_diff;

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

namespace {
// A small CCT-style config: conv stem, sequence pooling, no position embedding.
ViTConfig cct_config() {
  ViTConfig c;
  c.dim = 32, c.depth = 1, c.heads = 2, c.mlp_dim = 32;
  c.stem = "conv", c.stem_channels = 16, c.pool = "attn", c.pos_embed = "none";
  return c;
}

std::map<std::string, Shape> shapes_of(const nn::Module& m) {
  std::map<std::string, Shape> got;
  for (auto& [k, t] : m.state_dict()) got[k] = t.shape();
  return got;
}
}  // namespace

TEST_CASE("a CCT-style model: conv-stem, attention-pool and no position embedding names", "[vit]") {
  const ViTConfig c = cct_config();
  VisionTransformer m(c);
  // timm's keys without cls_token, pos_embed and the patch projection, plus the conv stem and
  // the pool (models/vit.h).
  std::map<std::string, Shape> expected = timm_keys(c);
  for (const char* gone :
       {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"})
    expected.erase(gone);
  expected["patch_embed.conv.0.weight"] = {16, 3, 3, 3};
  expected["patch_embed.conv.1.weight"] = {32, 16, 3, 3};
  expected["attention_pool.weight"] = {1, 32};
  expected["attention_pool.bias"] = {1};
  CHECK(shapes_of(m) == expected);
  CHECK(!m.cls_token.defined());
  CHECK(!m.pos_embed.defined());
  // 32 -> conv, pool 16 -> conv, pool 8: 64 tokens, no class token.
  CHECK(c.grid_size() == 8);
  CHECK(c.num_tokens() == 64);
  m.eval();
  NoGradGuard no_grad;
  CHECK(m.forward(zeros({2, 3, 32, 32})).shape() == Shape{2, 10});
}

TEST_CASE("the token grid follows the stem in the config and in the model", "[vit]") {
  struct Case {
    std::vector<std::string> overrides;
    std::int64_t grid;
  };
  // Each grid by hand: a conv keeps the side (stride 1, padding k / 2) or halves it (stride 2,
  // rounding up); each 3x3 stride-2 pool halves it, rounding up.
  const std::vector<Case> cases{
      {{"stem=patch", "patch_size=8"}, 4},
      {{"stem=conv"}, 8},                                     // 32 -> 16 -> 8
      {{"stem=conv", "stem_layers=1"}, 16},                   // 32 -> 16
      {{"stem=conv", "stem_stride=2", "stem_pool=none"}, 8},  // 32 -> 16 -> 8
      {{"stem=conv", "stem_layers=3", "stem_kernel=5"}, 4},   // 32 -> 16 -> 8 -> 4
      {{"stem=conv", "image_size=28", "stem_stride=2"}, 2},   // 28 -> 14, 7 -> 4, 2
      {{"stem=conv", "patch_size=5", "pool=mean"}, 8},        // patch_size is ignored
  };
  for (const Case& k : cases) {
    INFO(fmt::format("{}", fmt::join(k.overrides, " ")));
    ViTConfig c = apply_overrides(cct_config(), k.overrides);
    c.pos_embed = "learn";
    CHECK(c.grid_size() == k.grid);
    VisionTransformer m(c);
    NoGradGuard no_grad;
    const Tensor x = zeros({1, 3, c.image_size, c.image_size});
    CHECK(m.patch_embed->forward(x).shape() == Shape{1, k.grid * k.grid, c.dim});
    CHECK(m.pos_embed.shape() == Shape{1, c.num_tokens(), c.dim});
    CHECK(m.forward(x).shape() == Shape{1, 10});
  }
}

TEST_CASE("MAE's 2-D sin-cos position embedding by hand", "[vit]") {
  // D = 4: one frequency, omega = 1; token (r, c) = [sin c, cos c, sin r, cos r], after one zero
  // row for the class token.
  const double s1 = std::sin(1.0), c1 = std::cos(1.0);
  const std::vector<double> d4{0,  0,  0,  0,    // class token
                               0,  1,  0,  1,    // (0, 0)
                               s1, c1, 0,  1,    // (0, 1)
                               0,  1,  s1, c1,   // (1, 0)
                               s1, c1, s1, c1};  // (1, 1)
  const Tensor p = sincos_pos_embed_2d(4, 2, 1);
  REQUIRE(p.shape() == Shape{1, 5, 4});
  const auto v = p.to_vector<double>();
  for (std::size_t i = 0; i < d4.size(); ++i) CHECK(v[i] == Approx(d4[i]).margin(1e-7));
  // D = 8: omega = 1, 1/100 (10000^(-1/2)); token (1, 2) of a 3x3 grid, no prefix:
  // [sin 2, sin .02, cos 2, cos .02, sin 1, sin .01, cos 1, cos .01].
  const auto w = sincos_pos_embed_2d(8, 3, 0).to_vector<double>();
  REQUIRE(w.size() == 9 * 8);
  const std::vector<double> t5{std::sin(2.0), std::sin(0.02), std::cos(2.0), std::cos(0.02),
                               std::sin(1.0), std::sin(0.01), std::cos(1.0), std::cos(0.01)};
  for (std::size_t i = 0; i < 8; ++i) CHECK(w[5 * 8 + i] == Approx(t5[i]).margin(1e-7));
  CHECK_THROWS_WITH(sincos_pos_embed_2d(6, 2, 0), Catch::Contains("divisible by 4"));
}

TEST_CASE("pos_embed=sincos is a constant of the config, not a parameter; none adds nothing",
          "[vit]") {
  ViTConfig c = cct_config();
  c.pool = "cls", c.pos_embed = "sincos";
  VisionTransformer m(c);
  CHECK(shapes_of(m).count("pos_embed") == 0);
  CHECK(!m.pos_embed.requires_grad());
  CHECK(max_abs_diff(m.pos_embed, sincos_pos_embed_2d(32, 8, 1)) == 0);
  // The same weights without a position embedding give other logits, and the same ones once
  // the sincos table is zeroed: the forward pass adds exactly pos_embed.
  ViTConfig none = c;
  none.pos_embed = "none";
  VisionTransformer n(none);
  n.load_state_dict(m.state_dict());
  CHECK(!n.pos_embed.defined());
  NoGradGuard no_grad;
  Generator gen(4);
  const Tensor x = randn({2, 3, 32, 32}, gen);
  m.eval(), n.eval();
  CHECK(max_abs_diff(m.forward(x), n.forward(x)) > 1e-4);
  m.pos_embed = zeros({1, 65, 32});
  CHECK(max_abs_diff(m.forward(x), n.forward(x)) < 1e-6);
}

TEST_CASE("the new config fields round trip through JSON and are validated by name", "[vit]") {
  ViTConfig c = cct_config();
  c.stem_layers = 3, c.stem_kernel = 5, c.stem_stride = 2, c.stem_pool = "none";
  c.pos_embed = "sincos";
  const ViTConfig back = config_from_json(to_json(c));
  CHECK(to_json(back) == to_json(c));
  for (const char* key : {"stem", "stem_layers", "stem_channels", "stem_kernel", "stem_stride",
                          "stem_pool", "pos_embed"})
    CHECK(to_json(c).contains(key));
  // Files written before these fields existed read as today's defaults.
  nlohmann::json old = to_json(vit_preset("nano"));
  for (const char* key : {"stem", "stem_layers", "stem_channels", "stem_kernel", "stem_stride",
                          "stem_pool", "pos_embed"})
    old.erase(key);
  const ViTConfig defaults = config_from_json(old);
  CHECK(defaults.stem == "patch");
  CHECK(defaults.pos_embed == "learn");
  CHECK(to_json(defaults) == to_json(vit_preset("nano")));

  CHECK_THROWS_WITH(config_from_json({{"stem", "cnn"}}),
                    "[ViTConfig] stem must be 'patch' or 'conv', got 'cnn'");
  CHECK_THROWS_WITH(config_from_json({{"stem_pool", "avg"}}),
                    "[ViTConfig] stem_pool must be 'max' or 'none', got 'avg'");
  CHECK_THROWS_WITH(
      config_from_json({{"stem_layers", 0}}),
      Catch::Contains("[ViTConfig] stem_layers must be in [1, ") && Catch::Contains("], got 0"));
  CHECK_THROWS_WITH(
      config_from_json({{"stem_channels", -4}}),
      Catch::Contains("[ViTConfig] stem_channels must be in [1, ") && Catch::Contains("], got -4"));
  CHECK_THROWS_WITH(
      config_from_json({{"stem_kernel", 0}}),
      Catch::Contains("[ViTConfig] stem_kernel must be in [1, ") && Catch::Contains("], got 0"));
  CHECK_THROWS_WITH(
      config_from_json({{"stem_stride", 0}}),
      Catch::Contains("[ViTConfig] stem_stride must be in [1, ") && Catch::Contains("], got 0"));
  CHECK_THROWS_WITH(config_from_json({{"pool", "max"}}),
                    "[ViTConfig] pool must be 'cls', 'mean' or 'attn', got 'max'");
  CHECK_THROWS_WITH(config_from_json({{"pos_embed", "fixed"}}),
                    "[ViTConfig] pos_embed must be 'learn', 'sincos' or 'none', got 'fixed'");
  CHECK_THROWS_WITH(config_from_json({{"pos_embed", "sincos"}, {"dim", 30}, {"heads", 3}}),
                    "[ViTConfig] pos_embed 'sincos' needs dim divisible by 4, got dim 30");
  CHECK_THROWS_WITH(config_from_json({{"stem_kernel", "big"}}),
                    Catch::Contains("field 'stem_kernel' has the wrong type"));
  // With the conv stem, patch_size is not checked against image_size.
  CHECK_NOTHROW(config_from_json({{"stem", "conv"}, {"patch_size", 5}}));
}

TEST_CASE("forward_flops counts the conv stem and the sequence pool", "[vit]") {
  // Same tokens (8x8 grid, no class token) and transformer either way; only the stem and the
  // pool differ. Conv stem MACs by hand: conv 0 at 32x32: 1024 x 16 x 3 x 9 = 442,368;
  // conv 1 at 16x16: 256 x 32 x 16 x 9 = 1,179,648. Patch stem: 64 x 48 x 32 = 98,304.
  // Sequence pool: 64 x 32 for the scores and 64 x 32 for the sum, against mean pooling's none.
  ViTConfig conv = cct_config();
  ViTConfig patch = conv;
  patch.stem = "patch", patch.pool = "mean";
  const double diff =
      VisionTransformer(conv).forward_flops() - VisionTransformer(patch).forward_flops();
  CHECK(diff == 2.0 * (442368 + 1179648 - 98304 + 2 * 64 * 32));
}
