// The inspection commands: image files and resizing, predict, attention rollout, patches,
// summary and plot, on small models and hand-checkable inputs.
#include <stb_image_write.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <numeric>

#include "apps/commands/attention.h"
#include "apps/commands/command.h"
#include "apps/commands/patches.h"
#include "apps/commands/plot.h"
#include "apps/commands/predict.h"
#include "apps/commands/rollout.h"
#include "apps/commands/summary.h"
#include "apps/image.h"
#include "apps/weights.h"
#include "cifar_fixture.h"
#include "core/autograd.h"
#include "core/error.h"
#include "nn_test_util.h"
#include "ops/softmax.h"

using namespace pw;
using namespace pw::app;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// nano with two blocks: fast, and still every kind of module.
models::ViTConfig small_config() {
  models::ViTConfig c = models::vit_preset("nano");
  c.depth = 2;
  return c;
}

// Unusual mean and std, so that a pipeline ignoring the file's normalisation would show.
ModelInfo small_info(const models::ViTConfig& c) {
  ModelInfo info;
  info.config = c;
  info.normalization.mean = {0.5, 0.4, 0.3};
  info.normalization.std = {0.2, 0.25, 0.3};
  for (int i = 0; i < 10; ++i) info.classes.push_back("class" + std::to_string(i));
  return info;
}

// A 32x32 RGB pattern (HWC bytes, as stb writes them) with every channel varying.
std::vector<std::uint8_t> pattern_hwc(int side) {
  std::vector<std::uint8_t> hwc(static_cast<std::size_t>(side * side * 3));
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x)
      for (int c = 0; c < 3; ++c)
        hwc[static_cast<std::size_t>((y * side + x) * 3 + c)] =
            static_cast<std::uint8_t>((x * 7 + y * 13 + c * 71) % 256);
  return hwc;
}

std::vector<float> plane_of(const data::Image& img, int c) {
  const auto n = static_cast<std::size_t>(img.height * img.width);
  return {img.pixels.begin() + static_cast<std::ptrdiff_t>(c * n),
          img.pixels.begin() + static_cast<std::ptrdiff_t>((c + 1) * n)};
}

}  // namespace

TEST_CASE(
    "predict on a PNG file gives the softmax of the model on the same pixels normalised by hand",
    "[inspect]") {
  testing::TempDir tmp("inspect-predict");
  const auto cfg = small_config();
  Generator gen(7);
  models::VisionTransformer model(cfg, gen);
  const ModelInfo info = small_info(cfg);
  save_model_weights((tmp.path / "model.safetensors").string(), model, info);

  const auto hwc = pattern_hwc(32);
  const fs::path png = tmp.path / "pattern.png";
  REQUIRE(stbi_write_png(png.c_str(), 32, 32, 3, hwc.data(), 32 * 3) != 0);

  // The reference: the pixels as written, normalised with the file's mean and std, run
  // through the original model, softmax by the op.
  std::vector<float> x(3 * 32 * 32);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 32 * 32; ++i)
      x[static_cast<std::size_t>(c * 1024 + i)] =
          static_cast<float>((hwc[static_cast<std::size_t>(i * 3 + c)] / 255.0 -
                              info.normalization.mean[static_cast<std::size_t>(c)]) /
                             info.normalization.std[static_cast<std::size_t>(c)]);
  model.eval();
  std::vector<float> expected;
  {
    NoGradGuard no_grad;
    expected = softmax(model.forward(from_vector(x, {1, 3, 32, 32})), 1).to_vector<float>();
  }

  // What the command does: read the weights file back and classify the image file.
  const LoadedModel loaded = load_model_file((tmp.path / "model.safetensors").string());
  auto reloaded = build_model(loaded);
  const ImagePrediction p = predict_image(*reloaded, loaded.info, png.string(), 3);
  REQUIRE(p.probabilities.size() == 10);
  for (std::size_t i = 0; i < 10; ++i)
    CHECK(p.probabilities[i] == Approx(expected[i]).margin(1e-6));
  CHECK(std::accumulate(p.probabilities.begin(), p.probabilities.end(), 0.0) == Approx(1.0));

  REQUIRE(p.top.size() == 3);
  const auto best = static_cast<std::int64_t>(std::max_element(expected.begin(), expected.end()) -
                                              expected.begin());
  CHECK(p.top[0].index == best);
  CHECK(p.top[0].name == "class" + std::to_string(best));
  CHECK(p.top[0].probability >= p.top[1].probability);
  CHECK(p.top[1].probability >= p.top[2].probability);

  const auto j = predictions_json({p});
  REQUIRE(j.is_array());
  CHECK(j[0]["image"] == png.string());
  CHECK(j[0]["top"].size() == 3);
  CHECK(j[0]["top"][0]["index"] == best);
  CHECK(j[0]["top"][0]["probability"].get<double>() == Approx(p.top[0].probability));
}

TEST_CASE("bilinear resize matches hand-computed values (align_corners=False)", "[inspect]") {
  SECTION("2x2 -> 4x4: source coordinate (i + 0.5) / 2 - 0.5, clamped at the borders") {
    const auto out = resize_bilinear(std::vector<float>{0, 100, 200, 40}, 2, 2, 4, 4);
    // Rows first: weights (1, 0), (.75, .25), (.25, .75), (0, 1); then the same down the columns.
    const std::vector<float> expected{0,   25,     75,    100,  //
                                      50,  58.75,  76.25, 85,   //
                                      150, 126.25, 78.75, 55,   //
                                      200, 160,    80,    40};
    REQUIRE(out.size() == 16);
    for (std::size_t i = 0; i < 16; ++i) CHECK(out[i] == Approx(expected[i]).margin(1e-4));
  }
  SECTION("shrinking 4 -> 2 averages with the widened triangle filter") {
    // Output 0 is centred on source 1.0 with half-width 2: taps 0, 1, 2 weigh .75, .75, .25.
    const auto out = resize_bilinear(std::vector<float>{0, 10, 20, 30}, 1, 4, 1, 2);
    REQUIRE(out.size() == 2);
    CHECK(out[0] == Approx((0.75 * 0 + 0.75 * 10 + 0.25 * 20) / 1.75));
    CHECK(out[1] == Approx((0.25 * 10 + 0.75 * 20 + 0.75 * 30) / 1.75));
  }
  SECTION("a constant image stays constant, enlarged or shrunk") {
    const data::Image flat(3, 7, 5, 123);
    for (auto [h, w] : {std::pair{32, 32}, std::pair{3, 2}, std::pair{7, 40}}) {
      const data::Image r = resize_bilinear(flat, h, w);
      REQUIRE(r.height == h);
      REQUIRE(r.width == w);
      for (auto v : r.pixels) REQUIRE(v == 123);
    }
  }
  SECTION("uint8 images are resized per channel and rounded") {
    data::Image img(3, 2, 2);
    img.pixels = {0, 100, 200, 40, 10, 10, 10, 10, 255, 255, 0, 0};
    const data::Image r = resize_bilinear(img, 4, 4);
    CHECK(plane_of(r, 0) ==
          std::vector<float>{0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40});
    for (auto v : plane_of(r, 1)) CHECK(v == 10);
    CHECK(plane_of(r, 2)[4] == 191);  // .75 * 255 + .25 * 0 = 191.25
  }
}

TEST_CASE("to_model_input resizes and normalises with the given mean and std", "[inspect]") {
  data::Image img(3, 8, 8, 51);  // 51 / 255 = 0.2
  Normalization norm;
  norm.mean = {0.1, 0.2, 0.3};
  norm.std = {0.5, 0.25, 0.1};
  const Tensor x = to_model_input(img, norm, 32);
  REQUIRE(x.shape() == Shape{1, 3, 32, 32});
  const auto v = x.to_vector<float>();
  CHECK(v[0] == Approx((0.2 - 0.1) / 0.5));
  CHECK(v[1024 + 500] == Approx((0.2 - 0.2) / 0.25).margin(1e-6));
  CHECK(v[2048 + 1023] == Approx((0.2 - 0.3) / 0.1));
}

TEST_CASE("unreadable image files are one-line errors naming the file and the reason",
          "[inspect]") {
  testing::TempDir tmp("inspect-corrupt");
  const fs::path text = tmp.path / "notes.png";
  std::ofstream(text) << "this is not an image\n";
  CHECK_THROWS_WITH(load_image(text), Contains("notes.png") && Contains("cannot decode"));

  // A valid PNG cut short: the header decodes, the pixel data does not.
  const auto hwc = pattern_hwc(32);
  const fs::path good = tmp.path / "good.png";
  REQUIRE(stbi_write_png(good.c_str(), 32, 32, 3, hwc.data(), 32 * 3) != 0);
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const fs::path cut = tmp.path / "cut.png";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  CHECK_THROWS_WITH(load_image(cut), Contains("cut.png"));
  CHECK_NOTHROW(load_image(good));

  CHECK_THROWS_WITH(load_image(tmp.path / "missing.jpg"),
                    Contains("missing.jpg") && Contains("no such file"));
  try {
    load_image(text);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
  }
}

TEST_CASE("PNG files written are read back pixel for pixel", "[inspect]") {
  testing::TempDir tmp("inspect-png");
  data::Image img(3, 5, 7);
  for (std::size_t i = 0; i < img.pixels.size(); ++i)
    img.pixels[i] = static_cast<std::uint8_t>(i * 37 % 256);
  write_png(tmp.path / "sub" / "x.png", img);
  CHECK(load_image(tmp.path / "sub" / "x.png") == img);
}

TEST_CASE("attention rollout: rows sum to one and a 2-layer example by hand", "[inspect]") {
  SECTION("hand example, T = 2") {
    // Layer 1 has two heads averaging to A1 = [[1, 0], [.5, .5]]; with the residual,
    // A1' = (A1 + I) / 2 = [[1, 0], [.25, .75]]. Layer 2: A2 = [[0, 1], [1, 0]] gives
    // A2' = [[.5, .5], [.5, .5]]. Rollout R = A2' A1' = [[.625, .375], [.625, .375]].
    LayerAttention l1{2, 2, {1, 0, 1, 0, /* head 2 */ 1, 0, 0, 1}};
    LayerAttention l2{1, 2, {0, 1, 1, 0}};
    const TokenMatrix m1 = mean_over_heads(l1);
    CHECK(m1.values == std::vector<double>{1, 0, 0.5, 0.5});
    const TokenMatrix r = attention_rollout({l1, l2});
    REQUIRE(r.tokens == 2);
    CHECK(r.at(0, 0) == Approx(0.625));
    CHECK(r.at(0, 1) == Approx(0.375));
    CHECK(r.at(1, 0) == Approx(0.625));
    CHECK(r.at(1, 1) == Approx(0.375));
    // Order matters: A1' A2' = [[.5, .5], [.5, .5]] would be wrong.
    const TokenMatrix reversed = attention_rollout({l2, l1});
    CHECK(reversed.at(0, 0) == Approx(0.5));
  }
  SECTION("random row-stochastic layers give row-stochastic rollouts") {
    Generator gen(3);
    std::vector<LayerAttention> layers;
    for (int l = 0; l < 3; ++l) {
      LayerAttention a{2, 5, {}};
      for (int h = 0; h < 2; ++h)
        for (int r = 0; r < 5; ++r) {
          std::vector<float> row(5);
          float sum = 0;
          for (auto& v : row) sum += v = static_cast<float>(gen.uniform() + 0.01);
          for (auto v : row) a.probs.push_back(v / sum);
        }
      layers.push_back(a);
    }
    const TokenMatrix r = attention_rollout(layers);
    for (int i = 0; i < 5; ++i) {
      double sum = 0;
      for (int j = 0; j < 5; ++j) {
        CHECK(r.at(i, j) > 0);
        sum += r.at(i, j);
      }
      CHECK(sum == Approx(1.0));
    }
  }
  SECTION("patch weights: the class token's row, or the mean row without a class token") {
    const TokenMatrix m{3, {0.2, 0.3, 0.5, /**/ 0.0, 1.0, 0.0, /**/ 0.1, 0.1, 0.8}};
    const auto cls = patch_weights(m, 1);
    REQUIRE(cls.size() == 2);
    CHECK(cls[0] == Approx(0.3 / 0.8));
    CHECK(cls[1] == Approx(0.5 / 0.8));
    const auto mean = patch_weights(m, 0);
    REQUIRE(mean.size() == 3);
    CHECK(mean[0] == Approx(0.3 / 3));
    CHECK(mean[1] == Approx(1.4 / 3));
    CHECK(mean[2] == Approx(1.3 / 3));
  }
  SECTION("mismatched layers are errors") {
    CHECK_THROWS_WITH(attention_rollout({}), Contains("no attention maps"));
    CHECK_THROWS_WITH(
        attention_rollout({LayerAttention{1, 2, {1, 0, 0, 1}}, LayerAttention{1, 1, {1}}}),
        Contains("token count"));
  }
}

TEST_CASE("attention maps of a model: one per block, and patch weights over the grid",
          "[inspect]") {
  const auto cfg = small_config();
  Generator gen(11);
  models::VisionTransformer model(cfg, gen);
  model.eval();
  model.keep_attention(true);
  {
    NoGradGuard no_grad;
    model.forward(to_model_input(data::Image(3, 32, 32, 90), Normalization{}, 32));
  }
  const auto layers = layer_attentions(model);
  REQUIRE(layers.size() == 2);
  CHECK(layers[0].heads == cfg.heads);
  CHECK(layers[0].tokens == cfg.num_tokens());
  const TokenMatrix r = attention_rollout(layers);
  for (std::int64_t i = 0; i < r.tokens; ++i) {
    double sum = 0;
    for (std::int64_t j = 0; j < r.tokens; ++j) sum += r.at(i, j);
    CHECK(sum == Approx(1.0));
  }
  for (int layer : {-1, 0, 1}) {
    const auto w = attention_patch_weights(model, layer);
    REQUIRE(w.size() == static_cast<std::size_t>(cfg.num_patches()));
    CHECK(std::accumulate(w.begin(), w.end(), 0.0) == Approx(1.0));
  }
  CHECK_THROWS_WITH(attention_patch_weights(model, 2), Contains("--layer") && Contains("0..1"));

  const auto w = attention_patch_weights(model, -1);
  const data::Image overlay =
      attention_overlay(data::Image(3, 32, 32, 128), w, 8, 4, "viridis", 0.5);
  CHECK(overlay.height == 128);
  CHECK(overlay.width == 128);

  // A conv stem with one layer makes a 16x16 token grid, with no class token under attention
  // pooling: the weights cover that grid.
  auto conv_cfg = cfg;
  conv_cfg.stem = "conv", conv_cfg.stem_layers = 1, conv_cfg.pool = "attn";
  models::VisionTransformer conv(conv_cfg, gen);
  conv.eval();
  conv.keep_attention(true);
  {
    NoGradGuard no_grad;
    conv.forward(to_model_input(data::Image(3, 32, 32, 90), Normalization{}, 32));
  }
  const auto cw = attention_patch_weights(conv, -1);
  REQUIRE(cw.size() == 256);
  CHECK(std::accumulate(cw.begin(), cw.end(), 0.0) == Approx(1.0));
  CHECK(attention_overlay(data::Image(3, 32, 32, 128), cw, 16, 2, "jet", 0.5).width == 64);
}

TEST_CASE("patch grid: tiles in place with gaps between them", "[inspect]") {
  data::Image img(1, 4, 4);
  std::iota(img.pixels.begin(), img.pixels.end(), 0);  // pixel (y, x) = 4y + x
  const data::Image g = patch_grid(img, 2, 1, 1, 255);
  REQUIRE(g.height == 5);
  REQUIRE(g.width == 5);
  const std::vector<std::uint8_t> expected{0,   1,   255, 2,   3,    //
                                           4,   5,   255, 6,   7,    //
                                           255, 255, 255, 255, 255,  //
                                           8,   9,   255, 10,  11,   //
                                           12,  13,  255, 14,  15};
  CHECK(g.pixels == expected);
  const data::Image big = patch_grid(data::Image(3, 32, 32, 0), 4, 8, 2);
  CHECK(big.width == 8 * 32 + 7 * 2);
  CHECK_THROWS_WITH(patch_grid(img, 3, 1, 1), Contains("3x3"));
}

TEST_CASE("summary: every module, the parameter total and shapes from the config", "[inspect]") {
  auto cfg = small_config();
  cfg.head_hidden = 32;
  models::VisionTransformer model(cfg);
  const ModelSummary s = summarize(model);
  CHECK(s.total_params == model.num_parameters());
  CHECK(s.rows.size() == model.named_modules().size());
  // The children's counts and the model's own tensors (cls_token, pos_embed) add up.
  std::int64_t children = 0;
  for (const auto& r : s.rows)
    if (r.depth == 1) children += r.params;
  CHECK(children + model.cls_token.numel() + model.pos_embed.numel() == s.total_params);
  CHECK(s.forward_flops == model.forward_flops());

  auto row = [&](const std::string& name) {
    for (const auto& r : s.rows)
      if (r.name == name) return r;
    FAIL("no row " << name);
    return SummaryRow{};
  };
  const std::int64_t T = cfg.num_tokens(), D = cfg.dim;
  CHECK(row("").output == Shape{1, 10});
  CHECK(row("patch_embed").output == Shape{1, 64, D});
  CHECK(row("patch_embed.proj").output == Shape{1, D, 8, 8});
  CHECK(row("pos_drop").output == Shape{1, T, D});
  CHECK(row("blocks.1.attn.qkv").output == Shape{1, T, 3 * D});
  CHECK(row("blocks.1.mlp.fc1").output == Shape{1, T, cfg.mlp_dim});
  CHECK(row("blocks.1.mlp.act").output == Shape{1, T, cfg.mlp_dim});
  CHECK(row("blocks.1.mlp.drop2").output == Shape{1, T, D});
  CHECK(row("head_drop").output == Shape{1, D});
  CHECK(row("head.fc1").output == Shape{1, 32});
  CHECK(row("head.drop1").output == Shape{1, 32});
  CHECK(row("head").output == Shape{1, 10});
  CHECK(row("blocks.0.mlp.fc1").params == D * cfg.mlp_dim + cfg.mlp_dim);

  const std::string table = format_summary(s);
  CHECK_THAT(table, Contains("blocks.1.attn.qkv") && Contains("Total params: "));
  CHECK_THAT(format_summary(s, 1), !Contains("blocks.0.attn"));
}

TEST_CASE("summary of a conv-stem, attention-pooled model: stem shapes and the pool", "[inspect]") {
  auto cfg = small_config();
  cfg.stem = "conv", cfg.stem_channels = 16, cfg.pool = "attn", cfg.pos_embed = "sincos";
  models::VisionTransformer model(cfg);
  const ModelSummary s = summarize(model);  // also checks the rows it can against a forward pass
  CHECK(s.total_params == model.num_parameters());
  std::int64_t children = 0;
  for (const auto& r : s.rows)
    if (r.depth == 1) children += r.params;
  CHECK(children == s.total_params);  // no class token, and sincos is not a parameter
  auto row = [&](const std::string& name) {
    for (const auto& r : s.rows)
      if (r.name == name) return r;
    FAIL("no row " << name);
    return SummaryRow{};
  };
  const std::int64_t D = cfg.dim;
  CHECK(row("patch_embed").type == "ConvTokenizer");
  CHECK(row("patch_embed").output == Shape{1, 64, D});
  CHECK(row("patch_embed.conv.0").output == Shape{1, 16, 32, 32});  // before its pool
  CHECK(row("patch_embed.conv.1").output == Shape{1, D, 16, 16});
  CHECK(row("patch_embed.conv").output == Shape{1, D, 8, 8});
  CHECK(row("patch_embed.conv.1").params == D * 16 * 9);
  CHECK(row("pos_drop").output == Shape{1, 64, D});
  CHECK(row("attention_pool").type == "SequencePool");
  CHECK(row("attention_pool").output == Shape{1, D});
  CHECK(row("attention_pool").params == D + 1);
  CHECK(row("head_drop").output == Shape{1, D});
}

TEST_CASE(
    "a conv-stem model round trips through model.safetensors; a pos_embed mismatch is "
    "named",
    "[inspect]") {
  testing::TempDir tmp("inspect-cct");
  auto cfg = small_config();
  cfg.stem = "conv", cfg.stem_channels = 16, cfg.stem_kernel = 5, cfg.pool = "attn";
  cfg.pos_embed = "none";
  Generator gen(9);
  models::VisionTransformer model(cfg, gen);
  const std::string path = (tmp.path / "model.safetensors").string();
  save_model_weights(path, model, small_info(cfg));
  const LoadedModel loaded = load_model_file(path);
  CHECK(models::to_json(loaded.info.config) == models::to_json(cfg));
  auto back = build_model(loaded);
  Generator xg(10);
  const Tensor x = randn({2, 3, 32, 32}, xg);
  model.eval(), back->eval();
  NoGradGuard no_grad;
  CHECK(testing::max_abs_diff(model.forward(x), back->forward(x)) == 0);

  // The same weights into models whose position embedding differs: named, not a crash.
  auto learned_cfg = cfg;
  learned_cfg.pos_embed = "learn";
  models::VisionTransformer learned(learned_cfg);
  CHECK_THROWS_WITH(load_weights_into(learned, loaded.weights),
                    "[load] missing key pos_embed: the weights have no learned position "
                    "embedding, but the model has pos_embed='learn'");
  auto sincos_cfg = cfg;
  sincos_cfg.pos_embed = "sincos";
  models::VisionTransformer sincos(sincos_cfg);
  CHECK_THROWS_WITH(load_weights_into(sincos, learned.state_dict()),
                    "[load] unexpected key pos_embed: the weights hold a learned position "
                    "embedding, but the model has pos_embed='sincos'");
  CHECK_NOTHROW(load_weights_into(sincos, loaded.weights));
  // A learned embedding saved at another grid is resized to this model's token grid.
  auto wide_cfg = learned_cfg;
  wide_cfg.stem_layers = 1;  // a 16x16 grid
  models::VisionTransformer wide(wide_cfg);
  load_weights_into(learned, {{"pos_embed", wide.pos_embed}}, false);
  CHECK(testing::max_abs_diff(learned.pos_embed,
                              models::resize_pos_embed(wide.pos_embed, 0, 8, "bicubic")) == 0);
}

TEST_CASE("plot draws a tiny metrics file as a PNG of three panels", "[inspect]") {
  testing::TempDir tmp("inspect-plot");
  std::ofstream m(tmp.path / "metrics.jsonl");
  for (int s = 1; s <= 6; ++s)
    m << nlohmann::json{{"type", "step"},        {"epoch", (s + 2) / 3},  {"step", (s - 1) % 3},
                        {"global_step", s},      {"loss", 2.3 - 0.1 * s}, {"lr", 1e-3 * s / 6},
                        {"images_per_sec", 100}, {"data_wait", 0}}
             .dump()
      << "\n";
  m << R"({"type":"epoch","epoch":1,"global_step":3,"train_loss":2.1,"train_accuracy":0.2,"lr":0.0005,)"
    << R"("epoch_seconds":1,"images_per_sec":100,"data_wait_seconds":0,"test_loss":2.0,"test_accuracy":0.25})"
    << "\n";
  // An epoch that was not evaluated has no test figures.
  m << R"({"type":"epoch","epoch":2,"global_step":6,"train_loss":1.8,"train_accuracy":0.3,"lr":0.001,)"
    << R"("epoch_seconds":1,"images_per_sec":100,"data_wait_seconds":0})"
    << "\n";
  m.close();

  const MetricsHistory h = read_metrics(tmp.path / "metrics.jsonl");
  CHECK(h.steps.size() == 6);
  REQUIRE(h.epochs.size() == 2);
  CHECK(h.epochs[0].test_accuracy == 0.25);
  CHECK(!h.epochs[1].test_loss.has_value());

  const fs::path out = tmp.path / "curves.png";
  write_curves_png(tmp.path, out);
  const data::Image px = load_image(out);
  CHECK(px.width == 1560);
  CHECK(px.height == 480);
  // Something was drawn: the curves use colours, not just the black text on white.
  std::int64_t coloured = 0;
  const std::size_t plane = static_cast<std::size_t>(px.width) * px.height;
  for (std::size_t i = 0; i < plane; ++i)
    coloured += std::abs(px.pixels[i] - px.pixels[2 * plane + i]) > 60;
  CHECK(coloured > 500);
}

TEST_CASE("plot errors name the file and the line", "[inspect]") {
  testing::TempDir tmp("inspect-plot-bad");
  CHECK_THROWS_WITH(write_curves_png(tmp.path, tmp.path / "c.png"),
                    Contains("metrics.jsonl") && Contains("exist"));
  std::ofstream(tmp.path / "metrics.jsonl")
      << R"({"type":"step","global_step":1,"loss":2,"lr":0.1})"
      << "\n{not json\n";
  CHECK_THROWS_WITH(write_curves_png(tmp.path, tmp.path / "c.png"), Contains("metrics.jsonl:2"));
  std::ofstream(tmp.path / "metrics.jsonl") << "\n";
  CHECK_THROWS_WITH(write_curves_png(tmp.path, tmp.path / "c.png"),
                    Contains("no step or epoch records"));
  CHECK(!fs::exists(tmp.path / "c.png"));
}

TEST_CASE("command errors surface after parsing, where main turns them into exit code 1",
          "[inspect]") {
  testing::TempDir tmp("inspect-cli");
  CLI::App app;
  add_predict_command(app);
  add_patches_command(app);
  const std::string missing = (tmp.path / "missing.png").string();
  // Parsing succeeds; the callback only records the work.
  REQUIRE_NOTHROW(app.parse("patches " + missing + " --patch 4", false));
  CHECK_THROWS_WITH(run_chosen_command(), Contains("missing.png"));
  CHECK_FALSE(run_chosen_command());  // the work runs once
  CHECK_THROWS_AS(app.parse("patches " + missing + " --patch 0", false), CLI::ParseError);
}
