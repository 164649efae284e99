#include "apps/commands/predict.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "apps/commands/command.h"
#include "apps/image.h"
#include "apps/precision.h"
#include "core/autocast.h"
#include "core/autograd.h"
#include "core/error.h"

namespace pw::app {

std::vector<double> softmax_probabilities(const std::vector<float>& logits) {
  PW_CHECK(!logits.empty(), "[predict] no logits");
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (std::size_t i = 0; i < logits.size(); ++i)
    sum += p[i] = std::exp(static_cast<double>(logits[i]) - top);
  for (double& v : p) v /= sum;
  return p;
}

ImagePrediction classify_image(models::VisionTransformer& model, const ModelInfo& info,
                               const data::Image& image, std::int64_t top) {
  // As the evaluation prepares images: timm's eval transform with the weights' crop_pct.
  const Tensor x = to_model_input(image, info.normalization, static_cast<int>(model.cfg.image_size),
                                  info.crop_pct);
  model.eval();
  NoGradGuard no_grad;
  ImagePrediction r;
  r.probabilities = softmax_probabilities(model.forward(x).to_vector<float>());
  std::vector<std::int64_t> order(r.probabilities.size());
  std::iota(order.begin(), order.end(), 0);
  // Stable, so that ties keep class order and the output is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return r.probabilities[static_cast<std::size_t>(a)] >
           r.probabilities[static_cast<std::size_t>(b)];
  });
  const auto k = static_cast<std::size_t>(
      std::min<std::int64_t>(top, static_cast<std::int64_t>(order.size())));
  for (std::size_t i = 0; i < k; ++i) {
    const auto c = static_cast<std::size_t>(order[i]);
    r.top.push_back({order[i], c < info.classes.size() ? info.classes[c] : std::to_string(c),
                     r.probabilities[c]});
  }
  return r;
}

ImagePrediction predict_image(models::VisionTransformer& model, const ModelInfo& info,
                              const std::string& path, std::int64_t top) {
  ImagePrediction r = classify_image(model, info, load_image(path), top);
  r.image = path;
  return r;
}

nlohmann::json predictions_json(const std::vector<ImagePrediction>& predictions) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : predictions) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& c : p.top)
      top.push_back({{"index", c.index}, {"class", c.name}, {"probability", c.probability}});
    out.push_back({{"image", p.image}, {"top", top}});
  }
  return out;
}

namespace {

struct PredictOptions {
  std::string weights;
  std::vector<std::string> images;
  std::int64_t top = 5;
  std::string precision = "auto";  // apps/precision.h
  bool json = false;
};

void run_predict(const PredictOptions& o) {
  const LoadedModel loaded = load_model_file(o.weights);
  auto model = build_model(loaded);
  const PrecisionChoice precision = resolve_precision(o.precision);
  // Every image is read before anything is printed, so a bad file fails the whole command.
  std::vector<ImagePrediction> predictions;
  {
    AutocastGuard autocast(precision.bf16());  // the weights are cast once for all images
    for (const auto& path : o.images)
      predictions.push_back(predict_image(*model, loaded.info, path, o.top));
  }
  if (o.json) {
    fmt::print("{}\n", predictions_json(predictions).dump(2));
    return;
  }
  fmt::print("{}\n\n", describe(precision));
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    if (i > 0) fmt::print("\n");
    fmt::print("{}\n", predictions[i].image);
    for (std::size_t k = 0; k < predictions[i].top.size(); ++k) {
      const auto& c = predictions[i].top[k];
      fmt::print("  {}. {:<12} {:6.2f}%\n", k + 1, c.name, 100 * c.probability);
    }
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* sub = app.add_subcommand(
      "predict",
      "Classify image files (PNG, JPEG, BMP, PPM): the shorter side resized to the model's size "
      "(divided by the weights' crop_pct), the centre cropped square");
  sub->option_defaults()->always_capture_default();
  sub->add_option("--weights", o->weights, "model.safetensors or a checkpoint")->required();
  sub->add_option("images", o->images, "Image files")->required();
  sub->add_option("--top", o->top, "How many classes to show per image")
      ->check(CLI::Range(1, 1000));
  add_precision_flag(*sub, o->precision);
  sub->add_flag("--json", o->json, "Print JSON instead of text");
  when_chosen(*sub, [o] {
    run_predict(*o);
    return 0;
  });
}

}  // namespace pw::app
