#include "data/autoaugment.h"

#include <cmath>

#include "data/augment.h"
#include "core/error.h"

namespace pw::data {

std::string_view op_name(AugOp op) {
  switch (op) {
    case AugOp::Identity:
      return "Identity";
    case AugOp::ShearX:
      return "ShearX";
    case AugOp::ShearY:
      return "ShearY";
    case AugOp::TranslateX:
      return "TranslateX";
    case AugOp::TranslateY:
      return "TranslateY";
    case AugOp::Rotate:
      return "Rotate";
    case AugOp::Brightness:
      return "Brightness";
    case AugOp::Color:
      return "Color";
    case AugOp::Contrast:
      return "Contrast";
    case AugOp::Sharpness:
      return "Sharpness";
    case AugOp::Posterize:
      return "Posterize";
    case AugOp::Solarize:
      return "Solarize";
    case AugOp::AutoContrast:
      return "AutoContrast";
    case AugOp::Equalize:
      return "Equalize";
    case AugOp::Invert:
      return "Invert";
  }
  return "?";
}

bool op_is_signed(AugOp op) {
  switch (op) {
    case AugOp::ShearX:
    case AugOp::ShearY:
    case AugOp::TranslateX:
    case AugOp::TranslateY:
    case AugOp::Rotate:
    case AugOp::Brightness:
    case AugOp::Color:
    case AugOp::Contrast:
    case AugOp::Sharpness:
      return true;
    default:
      return false;
  }
}

double op_magnitude(AugOp op, int bin, int num_bins, int height, int width) {
  PW_CHECK(num_bins >= 2 && bin >= 0 && bin < num_bins, "[augment] magnitude bin {} not in [0, {})",
           bin, num_bins);
  // torch.linspace(0, hi, num_bins)[bin]
  const double t = static_cast<double>(bin) / (num_bins - 1);
  switch (op) {
    case AugOp::ShearX:
    case AugOp::ShearY:
      return 0.3 * t;
    case AugOp::TranslateX:
      return 150.0 / 331.0 * width * t;
    case AugOp::TranslateY:
      return 150.0 / 331.0 * height * t;
    case AugOp::Rotate:
      return 30.0 * t;
    case AugOp::Brightness:
    case AugOp::Color:
    case AugOp::Contrast:
    case AugOp::Sharpness:
      return 0.9 * t;
    case AugOp::Posterize:
      return 8.0 - std::nearbyint(bin / ((num_bins - 1) / 4.0));
    case AugOp::Solarize:
      return 255.0 * (1.0 - t);
    default:
      return 0.0;
  }
}

Image apply_op(const Image& img, AugOp op, double magnitude) {
  // Shears get atan(m) degrees in torchvision, i.e. a shear factor of exactly m; translations
  // and posterize bits are truncated toward zero by int().
  switch (op) {
    case AugOp::Identity:
      return img;
    case AugOp::ShearX:
      return shear_x(img, magnitude);
    case AugOp::ShearY:
      return shear_y(img, magnitude);
    case AugOp::TranslateX:
      return translate(img, static_cast<int>(magnitude), 0);
    case AugOp::TranslateY:
      return translate(img, 0, static_cast<int>(magnitude));
    case AugOp::Rotate:
      return rotate(img, magnitude);
    case AugOp::Brightness:
      return adjust_brightness(img, 1.0 + magnitude);
    case AugOp::Color:
      return adjust_saturation(img, 1.0 + magnitude);
    case AugOp::Contrast:
      return adjust_contrast(img, 1.0 + magnitude);
    case AugOp::Sharpness:
      return adjust_sharpness(img, 1.0 + magnitude);
    case AugOp::Posterize:
      return posterize(img, static_cast<int>(magnitude));
    case AugOp::Solarize:
      return solarize(img, magnitude);
    case AugOp::AutoContrast:
      return autocontrast(img);
    case AugOp::Equalize:
      return equalize(img);
    case AugOp::Invert:
      return invert(img);
  }
  return img;
}

const std::array<AugOp, 14>& randaugment_ops() {
  static const std::array<AugOp, 14> ops = {AugOp::Identity,     AugOp::ShearX,     AugOp::ShearY,
                                            AugOp::TranslateX,   AugOp::TranslateY, AugOp::Rotate,
                                            AugOp::Brightness,   AugOp::Color,      AugOp::Contrast,
                                            AugOp::Sharpness,    AugOp::Posterize,  AugOp::Solarize,
                                            AugOp::AutoContrast, AugOp::Equalize};
  return ops;
}

Image rand_augment(const Image& img, int n, int m, Generator& gen, int num_bins) {
  PW_CHECK(m >= 0 && m < num_bins, "[randaugment] magnitude {} not in [0, {})", m, num_bins);
  const auto& ops = randaugment_ops();
  Image out = img;
  for (int i = 0; i < n; ++i) {
    const AugOp op = ops[gen.randint(ops.size())];
    double magnitude = op_magnitude(op, m, num_bins, img.height, img.width);
    if (op_is_signed(op) && gen.randint(2) == 1) magnitude = -magnitude;
    out = apply_op(out, op, magnitude);
  }
  return out;
}

const std::array<SubPolicy, 25>& autoaugment_cifar10_policy() {
  using A = AugOp;
  static const std::array<SubPolicy, 25> policy = {{
      {{{A::Invert, 0.1, -1}, {A::Contrast, 0.2, 6}}},
      {{{A::Rotate, 0.7, 2}, {A::TranslateX, 0.3, 9}}},
      {{{A::Sharpness, 0.8, 1}, {A::Sharpness, 0.9, 3}}},
      {{{A::ShearY, 0.5, 8}, {A::TranslateY, 0.7, 9}}},
      {{{A::AutoContrast, 0.5, -1}, {A::Equalize, 0.9, -1}}},
      {{{A::ShearY, 0.2, 7}, {A::Posterize, 0.3, 7}}},
      {{{A::Color, 0.4, 3}, {A::Brightness, 0.6, 7}}},
      {{{A::Sharpness, 0.3, 9}, {A::Brightness, 0.7, 9}}},
      {{{A::Equalize, 0.6, -1}, {A::Equalize, 0.5, -1}}},
      {{{A::Contrast, 0.6, 7}, {A::Sharpness, 0.6, 5}}},
      {{{A::Color, 0.7, 7}, {A::TranslateX, 0.5, 8}}},
      {{{A::Equalize, 0.3, -1}, {A::AutoContrast, 0.4, -1}}},
      {{{A::TranslateY, 0.4, 3}, {A::Sharpness, 0.2, 6}}},
      {{{A::Brightness, 0.9, 6}, {A::Color, 0.2, 8}}},
      {{{A::Solarize, 0.5, 2}, {A::Invert, 0.0, -1}}},
      {{{A::Equalize, 0.2, -1}, {A::AutoContrast, 0.6, -1}}},
      {{{A::Equalize, 0.2, -1}, {A::Equalize, 0.6, -1}}},
      {{{A::Color, 0.9, 9}, {A::Equalize, 0.6, -1}}},
      {{{A::AutoContrast, 0.8, -1}, {A::Solarize, 0.2, 8}}},
      {{{A::Brightness, 0.1, 3}, {A::Color, 0.7, 0}}},
      {{{A::Solarize, 0.4, 5}, {A::AutoContrast, 0.9, -1}}},
      {{{A::TranslateY, 0.9, 9}, {A::TranslateY, 0.7, 9}}},
      {{{A::AutoContrast, 0.9, -1}, {A::Solarize, 0.8, 3}}},
      {{{A::Equalize, 0.8, -1}, {A::Invert, 0.1, -1}}},
      {{{A::TranslateY, 0.7, 9}, {A::AutoContrast, 0.9, -1}}},
  }};
  return policy;
}

Image auto_augment_cifar10(const Image& img, Generator& gen) {
  // Draw order as torchvision's get_params: policy index, two probabilities, two signs.
  const auto& policy = autoaugment_cifar10_policy();
  const SubPolicy& sub = policy[gen.randint(policy.size())];
  const double probs[2] = {gen.uniform(), gen.uniform()};
  const std::uint64_t signs[2] = {gen.randint(2), gen.randint(2)};
  Image out = img;
  for (int i = 0; i < 2; ++i) {
    const SubPolicyOp& s = sub[i];
    if (probs[i] > s.probability) continue;
    double magnitude =
        s.magnitude_bin < 0 ? 0.0 : op_magnitude(s.op, s.magnitude_bin, 10, img.height, img.width);
    if (op_is_signed(s.op) && signs[i] == 0) magnitude = -magnitude;
    out = apply_op(out, s.op, magnitude);
  }
  return out;
}

}  // namespace pw::data
