// Running a model over a whole split (CIFAR or an image folder's val/): what `vit train` reports
// after each epoch and `vit eval` prints, computed in one place.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/weights.h"
#include "data/dataset.h"
#include "models/vit.h"

namespace pw::app {

// Test-time augmentation: none, or flip (the mean of the logits of each image and of its
// horizontal mirror).
enum class Tta { None, Flip };
// "none" or "flip"; anything else is an error naming `flag`.
Tta parse_tta(const std::string& name, const std::string& flag = "--tta");
// (B, C, H, W) images mirrored left to right (a new contiguous tensor).
Tensor hflip_images(const Tensor& images);
// The model's (B, num_classes) logits for a batch of images under `tta`: with flip,
// (model(x) + model(mirror(x))) / 2, two forward passes.
Tensor predict_logits(models::VisionTransformer& model, const Tensor& images, Tta tta);

// The model's outputs on a split, in file order, without training augmentation (the logits
// are those of predict_logits under `tta`).
struct SplitPredictions {
  Tensor logits;                        // (N, C)
  std::vector<std::int64_t> predicted;  // argmax of each row
  std::vector<std::int64_t> labels;
  double loss = 0;  // mean cross-entropy
  double accuracy() const;
};

// Runs `model` in evaluation mode without recording a graph, then restores its mode; bf16 runs
// it under autocast (the weights cast once for the whole split). The images are prepared as
// `info` says: timm's evaluation transform to the model's image size with info.crop_pct, and
// info.normalization.
SplitPredictions predict_split(models::VisionTransformer& model, const ModelInfo& info,
                               const data::Dataset& split, std::int64_t batch_size, int workers = 1,
                               bool bf16 = false, Tta tta = Tta::None);
// The index of the largest logit of each row of (B, C) logits.
std::vector<std::int64_t> argmax_rows(const Tensor& logits);
// Class indices as the float tensor cross_entropy takes.
Tensor labels_tensor(const std::vector<std::int64_t>& labels);

}  // namespace pw::app
