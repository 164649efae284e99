// RandAugment (Cubuk et al. 2020) and the AutoAugment CIFAR-10 policy (Cubuk et al. 2019),
// with torchvision's op list, magnitude ranges (_augmentation_space) and sampling order.
#pragma once
#include <array>
#include <string_view>

#include "data/image.h"
#include "core/random.h"

namespace pw::data {

enum class AugOp {
  Identity,
  ShearX,
  ShearY,
  TranslateX,
  TranslateY,
  Rotate,
  Brightness,
  Color,
  Contrast,
  Sharpness,
  Posterize,
  Solarize,
  AutoContrast,
  Equalize,
  Invert,
};

// The op's name as torchvision spells it ("ShearX", ...).
std::string_view op_name(AugOp op);
// Whether torchvision negates the op's magnitude with probability 1/2.
bool op_is_signed(AugOp op);
// The magnitude of bin `bin` out of `num_bins` (torchvision's _augmentation_space for an image
// of the given size): e.g. Rotate linspace(0, 30), Solarize linspace(255, 0), Posterize
// 8 - round(bin / ((num_bins - 1) / 4)), TranslateX linspace(0, 150/331 * width).
double op_magnitude(AugOp op, int bin, int num_bins, int height, int width);
// Applies one op with a signed magnitude as torchvision's _apply_op does (fill 0).
Image apply_op(const Image& img, AugOp op, double magnitude);

// The 14 ops RandAugment chooses from (torchvision's list: no Invert).
const std::array<AugOp, 14>& randaugment_ops();
// RandAugment: `n` ops drawn uniformly (with repetition), each at magnitude bin `m` of
// `num_bins` and a random sign.
Image rand_augment(const Image& img, int n, int m, Generator& gen, int num_bins = 31);

struct SubPolicyOp {
  AugOp op;
  double probability;
  int magnitude_bin;  // out of 10; -1 for ops without a magnitude
};
using SubPolicy = std::array<SubPolicyOp, 2>;
// The 25 sub-policies of torchvision's AutoAugmentPolicy.CIFAR10.
const std::array<SubPolicy, 25>& autoaugment_cifar10_policy();
// AutoAugment: one sub-policy drawn uniformly, each of its two ops applied with its probability.
Image auto_augment_cifar10(const Image& img, Generator& gen);

}  // namespace pw::data
