// Resizing, and the crops built on it as torchvision and timm define them: Resize to a shorter
// side, CenterCrop, timm's evaluation transform (resize, then centre crop by crop_pct) and
// RandomResizedCrop. Every resize is the antialiased bilinear one below.
#pragma once
#include <vector>

#include "core/random.h"
#include "data/image.h"

namespace pw::data {

// Bilinear resize with align_corners=False, as torch's F.interpolate(mode="bilinear",
// antialias=True) and PIL's BILINEAR: when enlarging it is the classic 2x2 interpolation at
// source coordinate (dst + 0.5) * in / out - 0.5 (clamped at the borders); when shrinking the
// triangle filter widens to cover every source pixel, so that a photo shrunk to 32x32 is
// averaged rather than aliased. One plane of floats, (h, w) row-major.
std::vector<float> resize_bilinear(const std::vector<float>& plane, int h, int w, int out_h,
                                   int out_w);
// The same on every channel of a uint8 image, rounded to the nearest value.
Image resize_bilinear(const Image& img, int out_h, int out_w);

// torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer
// int(size * long / short), keeping the aspect ratio.
Image resize_shorter_side(const Image& img, int size);

// The size x size window at the centre (torchvision's CenterCrop: offsets round((H - size) / 2)
// half to even); the image must be at least size x size.
Image center_crop(const Image& img, int size);

// timm's evaluation transform: resize the shorter side to floor(size / crop_pct), then take the
// centre size x size. crop_pct 1 keeps the whole shorter side; an image that is already
// size x size is then returned as it is.
Image eval_transform(const Image& img, int size, double crop_pct);

// A crop window: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// The window of torchvision's RandomResizedCrop.get_params on an image of height x width: up to
// ten tries of an area fraction uniform in [scale_min, scale_max] and a log-uniform aspect ratio
// (w / h) in [ratio_min, ratio_max], sides rounded half to even, placed uniformly; when no try
// fits, the centre crop with the aspect ratio clamped to the range.
CropBox random_resized_crop_box(int height, int width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, Generator& gen);

// The window `box` of the image resized to size x size (torchvision's resized_crop).
Image resized_crop(const Image& img, const CropBox& box, int size);

// RandomResizedCrop(size, scale, ratio): random_resized_crop_box, then resized_crop.
Image random_resized_crop(const Image& img, int size, double scale_min, double scale_max,
                          double ratio_min, double ratio_max, Generator& gen);

}  // namespace pw::data
