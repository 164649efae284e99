// Per-image augmentations on uint8 CHW images, each in two layers: a deterministic op with
// explicit parameters (tested on tiny known images) and, where the op is random, a wrapper that
// draws those parameters from a pw::Generator (so that every result is reproducible).
//
// The photometric and geometric ops follow torchvision.transforms.functional on uint8 tensors:
// arithmetic in float32, results clamped to [0, 255] and truncated to uint8, geometric ops
// sampled nearest-neighbour at pixel centres (grid_sample's round-half-to-even) with fill 0,
// which is torchvision's default (fill=None) for RandAugment and AutoAugment.
#pragma once
#include <cstdint>

#include "data/image.h"
#include "core/random.h"

namespace pw::data {

// ---- geometric (deterministic) ----
// The window at (dx, dy) of the image zero-padded by `padding` on each side; dx, dy in
// [0, 2*padding], so (padding, padding) returns the image unchanged.
Image crop(const Image& img, int dx, int dy, int padding);
// Mirror left-right.
Image hflip(const Image& img);
// Counter-clockwise rotation by `degrees` about the image centre (torchvision's F.rotate).
Image rotate(const Image& img, double degrees, std::uint8_t fill = 0);
// Shear along x by factor m about the top-left corner: output (x, y) samples x + m*(y+0.5)
// (torchvision's F.affine with shear=atan(m) degrees and center=[0, 0], as RandAugment uses).
Image shear_x(const Image& img, double m, std::uint8_t fill = 0);
// Shear along y by factor m about the top-left corner.
Image shear_y(const Image& img, double m, std::uint8_t fill = 0);
// Shift right by tx and down by ty pixels.
Image translate(const Image& img, int tx, int ty, std::uint8_t fill = 0);

// ---- photometric (deterministic) ----
// Blend with black: factor 0 gives black, 1 the image.
Image adjust_brightness(const Image& img, double factor);
// Blend with the grayscale image ("Color"): 0 gives grayscale, 1 the image.
Image adjust_saturation(const Image& img, double factor);
// Blend with the mean grayscale value: 0 gives flat gray, 1 the image.
Image adjust_contrast(const Image& img, double factor);
// Blend with a 3x3-smoothed image (border pixels kept): 0 gives the smoothed image.
Image adjust_sharpness(const Image& img, double factor);
// Keep the `bits` most significant bits of each value.
Image posterize(const Image& img, int bits);
// Invert every value >= threshold.
Image solarize(const Image& img, double threshold);
// 255 - value.
Image invert(const Image& img);
// Stretch each channel so that its minimum becomes 0 and its maximum 255.
Image autocontrast(const Image& img);
// Equalize each channel's histogram (torchvision's/PIL's lookup table).
Image equalize(const Image& img);
// Fill the square [cy - size/2, cy + size/2) x [cx - size/2, cx + size/2), clipped to the
// image, with `fill[c]` per channel (DeVries & Taylor's Cutout: the centre may lie anywhere).
Image cutout(const Image& img, int cy, int cx, int size, const std::uint8_t* fill);

// ---- random wrappers ----
// Crop at an offset drawn uniformly from [0, 2*padding]^2.
Image random_crop(const Image& img, int padding, Generator& gen);
// Mirror with probability p.
Image random_hflip(const Image& img, Generator& gen, double p = 0.5);
enum class CutoutFill { Zero, Mean };
// Cutout with a uniformly drawn centre; Mean fills with the CIFAR-10 mean colour, which is what
// the paper's zeroing after normalisation amounts to.
Image random_cutout(const Image& img, int size, CutoutFill fill, Generator& gen);

}  // namespace pw::data
