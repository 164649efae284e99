// `vit predict --weights FILE IMAGE...`: the top-k classes of each image, as text or JSON.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/image.h"
#include "apps/weights.h"
#include "models/vit.h"

namespace pw::app {

struct ClassProbability {
  std::int64_t index = 0;
  std::string name;
  double probability = 0;
};

struct ImagePrediction {
  std::string image;
  std::vector<double> probabilities;  // softmax of the logits, one per class
  std::vector<ClassProbability> top;  // the k most probable, most probable first
};

// Softmax of a row of logits, in double (max subtracted first).
std::vector<double> softmax_probabilities(const std::vector<float>& logits);

// Resizes and normalises one image and runs the model on it (eval mode, no grad).
ImagePrediction classify_image(models::VisionTransformer& model, const ModelInfo& info,
                               const data::Image& image, std::int64_t top);
// classify_image on an image file; `image` of the result is the path.
ImagePrediction predict_image(models::VisionTransformer& model, const ModelInfo& info,
                              const std::string& path, std::int64_t top);

// The predictions as a JSON array of {"image", "top": [{"index", "class", "probability"}]}.
nlohmann::json predictions_json(const std::vector<ImagePrediction>& predictions);

// Declares `predict` with its flags on `app`.
void add_predict_command(CLI::App& app);

}  // namespace pw::app
