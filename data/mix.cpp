#include "data/mix.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pw::data {

void normalize_into(const Image& img, float* out, const Normalization& norm) {
  PW_CHECK(img.channels == 3, "[normalize] expects 3 channels, got {}", img.channels);
  PW_CHECK(norm.mean.size() == 3 && norm.std.size() == 3,
           "[normalize] needs 3 means and 3 stds, got {} and {}", norm.mean.size(),
           norm.std.size());
  const std::size_t plane = static_cast<std::size_t>(img.height * img.width);
  for (std::size_t c = 0; c < 3; ++c) {
    // One multiply-add per pixel: (x/255 - m)/s = x * (1/(255 s)) - m/s, in float32 from the
    // float32-rounded mean and std.
    const auto m = static_cast<float>(norm.mean[c]), s = static_cast<float>(norm.std[c]);
    const float scale = 1.0f / (255.0f * s);
    const float shift = -m / s;
    const std::uint8_t* p = img.pixels.data() + c * plane;
    float* o = out + c * plane;
    for (std::size_t i = 0; i < plane; ++i) o[i] = static_cast<float>(p[i]) * scale + shift;
  }
}

double sample_gamma(double shape, Generator& gen) {
  PW_CHECK(shape > 0.0, "[gamma] shape must be positive, got {}", shape);
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a) keeps the squeeze method's shape >= 1 requirement.
    double u = gen.uniform();
    while (u <= 0.0) u = gen.uniform();
    return sample_gamma(shape + 1.0, gen) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = gen.normal();
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    const double u = gen.uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0.0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

double sample_beta(double a, double b, Generator& gen) {
  const double x = sample_gamma(a, gen);
  const double y = sample_gamma(b, gen);
  // Both can underflow to 0 for tiny shapes; then the two ends are equally likely.
  if (x + y <= 0.0) return gen.uniform() < 0.5 ? 0.0 : 1.0;
  return x / (x + y);
}

MixParams sample_mix(const MixConfig& config, int height, int width, Generator& gen) {
  MixParams mix;
  if (!config.enabled()) return mix;
  if (config.mixup_alpha > 0.0 && config.cutmix_alpha > 0.0) {
    mix.cutmix = gen.uniform() < config.switch_prob;
  } else {
    mix.cutmix = config.cutmix_alpha > 0.0;
  }
  const double alpha = mix.cutmix ? config.cutmix_alpha : config.mixup_alpha;
  mix.lambda = sample_beta(alpha, alpha, gen);
  if (!mix.cutmix) return mix;
  const double ratio = std::sqrt(1.0 - mix.lambda);
  const int cut_h = static_cast<int>(height * ratio), cut_w = static_cast<int>(width * ratio);
  const int cy = static_cast<int>(gen.randint(static_cast<std::uint64_t>(height)));
  const int cx = static_cast<int>(gen.randint(static_cast<std::uint64_t>(width)));
  mix.y0 = std::clamp(cy - cut_h / 2, 0, height);
  mix.y1 = std::clamp(cy + cut_h / 2, 0, height);
  mix.x0 = std::clamp(cx - cut_w / 2, 0, width);
  mix.x1 = std::clamp(cx + cut_w / 2, 0, width);
  // The box was clipped, so lambda is recomputed from the pixels actually pasted.
  mix.lambda = 1.0 - static_cast<double>((mix.y1 - mix.y0) * (mix.x1 - mix.x0)) / (height * width);
  return mix;
}

std::vector<float> smooth_one_hot(const std::vector<std::int64_t>& labels, int num_classes,
                                  double smoothing) {
  const float off = static_cast<float>(smoothing / num_classes);
  const float on = static_cast<float>(1.0 - smoothing + smoothing / num_classes);
  std::vector<float> out(labels.size() * static_cast<std::size_t>(num_classes), off);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    PW_CHECK(labels[i] >= 0 && labels[i] < num_classes, "[one_hot] label {} not in [0, {})",
             labels[i], num_classes);
    out[i * num_classes + static_cast<std::size_t>(labels[i])] = on;
  }
  return out;
}

Tensor apply_mix(const Tensor& images, const std::vector<std::int64_t>& labels, int num_classes,
                 double label_smoothing, const MixParams& mix) {
  PW_CHECK(images.dim() == 4 && images.is_contiguous() && images.dtype() == DType::Float32,
           "[mix] expects a contiguous float32 (B, C, H, W) batch, got shape {}", images.shape());
  const std::int64_t B = images.size(0), per_image = images.numel() / std::max<std::int64_t>(B, 1);
  // The partners are the unmodified batch reversed: pair (i, B-1-i) reads both originals.
  Tensor reversed = empty(images.shape());
  const float* x = images.data<float>();
  float* r = reversed.data<float>();
  for (std::int64_t i = 0; i < B; ++i)
    std::copy(x + (B - 1 - i) * per_image, x + (B - i) * per_image, r + i * per_image);
  return mix_with(images, reversed, labels, {labels.rbegin(), labels.rend()}, num_classes,
                  label_smoothing, mix);
}

Tensor mix_with(const Tensor& images, const Tensor& partners,
                const std::vector<std::int64_t>& labels,
                const std::vector<std::int64_t>& partner_labels, int num_classes,
                double label_smoothing, const MixParams& mix) {
  PW_CHECK(images.dim() == 4 && images.is_contiguous() && images.dtype() == DType::Float32,
           "[mix] expects a contiguous float32 (B, C, H, W) batch, got shape {}", images.shape());
  PW_CHECK(partners.shape() == images.shape() && partners.is_contiguous() &&
               partners.dtype() == DType::Float32,
           "[mix] partners {} do not match the batch {}", partners.shape(), images.shape());
  const std::int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  PW_CHECK(static_cast<std::int64_t>(labels.size()) == B &&
               static_cast<std::int64_t>(partner_labels.size()) == B,
           "[mix] {} labels and {} partner labels for a batch of {}", labels.size(),
           partner_labels.size(), B);
  float* x = images.data<float>();
  const float* partner = partners.data<float>();
  const std::int64_t per_image = C * H * W;
  const float lam = static_cast<float>(mix.lambda);
  for (std::int64_t i = 0; i < B; ++i) {
    const float* b = partner + i * per_image;
    float* o = x + i * per_image;
    if (!mix.cutmix) {
      for (std::int64_t k = 0; k < per_image; ++k) o[k] = o[k] * lam + b[k] * (1.0f - lam);
      continue;
    }
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t y = mix.y0; y < mix.y1; ++y)
        for (std::int64_t xx = mix.x0; xx < mix.x1; ++xx) {
          const std::int64_t k = (c * H + y) * W + xx;
          o[k] = b[k];
        }
  }
  images.bump_version();

  const std::vector<float> y = smooth_one_hot(labels, num_classes, label_smoothing);
  const std::vector<float> y2 = smooth_one_hot(partner_labels, num_classes, label_smoothing);
  std::vector<float> soft(y.size());
  for (std::size_t k = 0; k < soft.size(); ++k)
    soft[k] = static_cast<float>(mix.lambda * y[k] + (1.0 - mix.lambda) * y2[k]);
  return from_vector(soft, {B, num_classes});
}

}  // namespace pw::data
