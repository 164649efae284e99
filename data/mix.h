// Batch-level steps: normalisation to float32, and Mixup (Zhang et al. 2018) / CutMix (Yun et
// al. 2019) with label-smoothed soft targets, drawn as timm's Mixup does in "batch" mode (one
// lambda per batch, image i mixed with image B-1-i).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "data/image.h"

namespace pw::data {

// Writes (x / 255 - mean[c]) / std[c] for a 3-channel image into out (C*H*W floats, CHW), in
// float32; the default is CIFAR-10's mean and std.
void normalize_into(const Image& img, float* out, const Normalization& norm = {});

// Gamma(shape, 1) (Marsaglia & Tsang; shape < 1 via Gamma(shape + 1) * U^(1/shape)).
double sample_gamma(double shape, Generator& gen);
// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
double sample_beta(double a, double b, Generator& gen);

struct MixConfig {
  double mixup_alpha = 0.0;   // > 0 enables Mixup
  double cutmix_alpha = 0.0;  // > 0 enables CutMix
  double switch_prob = 0.5;   // with both on: the chance of CutMix for a batch
  double label_smoothing = 0.0;
  bool enabled() const { return mixup_alpha > 0.0 || cutmix_alpha > 0.0; }
};

// The mixing of one batch: lambda is the weight of the unflipped batch; for CutMix, the pasted
// box [y0, y1) x [x0, x1) and lambda = 1 - box area / image area (timm's correct_lam).
struct MixParams {
  bool cutmix = false;
  double lambda = 1.0;
  int y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};

// Draws one batch's mixing as timm: CutMix or Mixup, lambda ~ Beta(alpha, alpha); for CutMix a
// box of side int(side * sqrt(1 - lambda)) centred uniformly, clipped, and lambda corrected.
MixParams sample_mix(const MixConfig& config, int height, int width, Generator& gen);

// Label-smoothed one-hot rows (B, C): 1 - s + s/C on the label, s/C elsewhere (timm's values).
std::vector<float> smooth_one_hot(const std::vector<std::int64_t>& labels, int num_classes,
                                  double smoothing);

// Mixes a contiguous float32 (B, C, H, W) batch in place with its reverse (image i with B-1-i)
// and returns the soft targets (B, num_classes): lambda * y_i + (1 - lambda) * y_{B-1-i},
// both label-smoothed.
Tensor apply_mix(const Tensor& images, const std::vector<std::int64_t>& labels, int num_classes,
                 double label_smoothing, const MixParams& mix);

// The same with the partners given: image i of `images` is mixed in place with image i of
// `partners` (same shape), and the soft targets mix labels[i] with partner_labels[i]. A batch
// split over ranks mixes its rows with partners that another rank holds (data/loader.h).
Tensor mix_with(const Tensor& images, const Tensor& partners,
                const std::vector<std::int64_t>& labels,
                const std::vector<std::int64_t>& partner_labels, int num_classes,
                double label_smoothing, const MixParams& mix);

}  // namespace pw::data
