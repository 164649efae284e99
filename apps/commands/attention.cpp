#include "apps/commands/attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "apps/colormap.h"
#include "apps/commands/command.h"
#include "apps/commands/predict.h"
#include "apps/image.h"
#include "apps/weights.h"
#include "core/autograd.h"
#include "core/error.h"

namespace pw::app {

std::vector<LayerAttention> layer_attentions(const models::VisionTransformer& model) {
  std::vector<LayerAttention> layers;
  for (const Tensor& a : model.attention_maps()) {
    PW_CHECK(
        a.defined(),
        "[attention] no attention maps kept: call keep_attention(true) before the forward pass");
    PW_CHECK(a.dim() == 4 && a.shape()[0] == 1 && a.shape()[2] == a.shape()[3],
             "[attention] expected (1, H, T, T) attention for one image, got {}",
             shape_str(a.shape()));
    layers.push_back({a.shape()[1], a.shape()[2], a.to_vector<float>()});
  }
  return layers;
}

std::vector<double> attention_patch_weights(const models::VisionTransformer& model, int layer) {
  const auto layers = layer_attentions(model);
  const std::int64_t prefix = model.cfg.num_tokens() - model.cfg.num_patches();
  if (layer < 0) return patch_weights(attention_rollout(layers), prefix);
  PW_CHECK(static_cast<std::size_t>(layer) < layers.size(),
           "[--layer] {} is out of range: the model has blocks 0..{}", layer, layers.size() - 1);
  return patch_weights(mean_over_heads(layers[static_cast<std::size_t>(layer)]), prefix);
}

data::Image attention_overlay(const data::Image& image, const std::vector<double>& weights,
                              int grid, int scale, const std::string& colormap_name, double alpha) {
  PW_CHECK(weights.size() == static_cast<std::size_t>(grid) * grid,
           "[attention] {} weights for a {}x{} grid", weights.size(), grid, grid);
  PW_CHECK(image.channels == 3, "[attention] expects an RGB image");
  const data::Image base = upscale_nearest(image, scale);
  // Stretch to [0, 1]: attention is spread thinly over the patches, so absolute values would
  // all look alike; the map shows where it is relatively highest.
  const auto [lo, hi] = std::minmax_element(weights.begin(), weights.end());
  const double range = *hi - *lo;
  std::vector<float> heat(weights.size());
  for (std::size_t i = 0; i < weights.size(); ++i)
    heat[i] = range > 0 ? static_cast<float>((weights[i] - *lo) / range) : 0.0f;
  // Bilinear upscaling of the patch grid gives smooth blobs instead of hard patch edges.
  heat = resize_bilinear(heat, grid, grid, base.height, base.width);
  data::Image out = base;
  for (int y = 0; y < base.height; ++y)
    for (int x = 0; x < base.width; ++x) {
      const Rgb colour =
          colormap(colormap_name, heat[static_cast<std::size_t>(y) * base.width + x]);
      for (int c = 0; c < 3; ++c) {
        const double v =
            (1 - alpha) * base.at(c, y, x) + alpha * colour[static_cast<std::size_t>(c)];
        out.at(c, y, x) = static_cast<std::uint8_t>(std::clamp(v + 0.5, 0.0, 255.0));
      }
    }
  return out;
}

namespace {

struct AttentionOptions {
  std::string weights;
  std::string image;
  std::string out = "attention.png";
  int layer = -1;
  int scale = 8;
  std::string colormap = "jet";
  double alpha = 0.5;
};

void run_attention(const AttentionOptions& o) {
  const LoadedModel loaded = load_model_file(o.weights);
  auto model = build_model(loaded);
  const int side = static_cast<int>(model->cfg.image_size);
  // The image as the evaluation prepares it (timm's eval transform, the weights' crop_pct).
  const data::Image image = data::eval_transform(load_image(o.image), side, loaded.info.crop_pct);
  PW_CHECK(o.layer >= -1, "[--layer] expects a block index or -1, got {}", o.layer);
  model->keep_attention(true);
  const ImagePrediction pred = classify_image(*model, loaded.info, image, 1);
  const int grid = static_cast<int>(model->cfg.grid_size());  // the token grid, of any stem
  const auto weights = attention_patch_weights(*model, o.layer);
  // The image as the model sees it beside the same image under the heat map.
  const int scale = o.scale;
  write_png(o.out, hconcat({upscale_nearest(image, scale),
                            attention_overlay(image, weights, grid, scale, o.colormap, o.alpha)},
                           std::max(2, scale)));
  const std::string what =
      o.layer < 0 ? fmt::format("attention rollout over {} blocks", model->cfg.depth)
                  : fmt::format("block {} attention (mean of {} heads)", o.layer, model->cfg.heads);
  fmt::print("{}: {} for {}, predicted {} ({:.1f}%); written to {}\n", o.image, what,
             model->cfg.pool == "cls"    ? "the class token"
             : model->cfg.pool == "attn" ? "the tokens (attention-pooled, shown as their mean)"
                                         : "the mean-pooled tokens",
             pred.top[0].name, 100 * pred.top[0].probability, o.out);
}

}  // namespace

void add_attention_command(CLI::App& app) {
  auto o = std::make_shared<AttentionOptions>();
  CLI::App* sub = app.add_subcommand(
      "attention", "Heat map of where the model looks (attention rollout) in an image");
  sub->option_defaults()->always_capture_default();
  sub->add_option("--weights", o->weights, "model.safetensors or a checkpoint")->required();
  sub->add_option("image", o->image, "Image file (PNG, JPEG, BMP, PPM)")->required();
  sub->add_option("-o,--out", o->out,
                  "Output PNG: the image and the heat map over it, side by side");
  sub->add_option("--layer", o->layer,
                  "Show one block's head-averaged attention (0-based); -1: rollout over all");
  sub->add_option("--scale", o->scale, "Upscaling factor of the image")->check(CLI::Range(1, 64));
  sub->add_option("--colormap", o->colormap, "Colour map")->check(CLI::IsMember(colormap_names()));
  sub->add_option("--alpha", o->alpha, "Opacity of the heat map")->check(CLI::Range(0.0, 1.0));
  when_chosen(*sub, [o] {
    run_attention(*o);
    return 0;
  });
}

}  // namespace pw::app
