// Image files for the inspection commands: reading PNG/JPEG/BMP/PPM (stb_image), resizing,
// turning pixels into the model's normalised input, and writing PNG (stb_image_write).
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "data/image.h"
#include "apps/weights.h"
#include "core/tensor.h"

namespace pw::app {

// The limits of the image reader: a file's size, and the pixels its header may claim (checked
// before decoding, so that a few bytes claiming a huge image cost nothing).
inline constexpr std::uint64_t kMaxImageFileBytes = std::uint64_t{256} << 20;
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 24;  // 4096 x 4096

// Reads a PNG, JPEG, BMP or PPM/PGM file as 3-channel RGB (grey is replicated, alpha dropped);
// a missing, undecodable, truncated or too large file is a pw::Error naming the file and the
// reason.
data::Image load_image(const std::filesystem::path& path);
// The same for a file's bytes held in memory; `name` names it in errors.
data::Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name);

// Writes an RGB (or grey) image as PNG, atomically; errors name the file.
void write_png(const std::filesystem::path& path, const data::Image& img);

// Bilinear resize with align_corners=False, as torch's F.interpolate(mode="bilinear",
// antialias=True) and PIL's BILINEAR: when enlarging it is the classic 2x2 interpolation at
// source coordinate (dst + 0.5) * in / out - 0.5 (clamped at the borders); when shrinking the
// triangle filter widens to cover every source pixel, so that a photo shrunk to 32x32 is
// averaged rather than aliased. One plane of floats, (h, w) row-major.
std::vector<float> resize_bilinear(const std::vector<float>& plane, int h, int w, int out_h,
                                   int out_w);
// The same on every channel of a uint8 image, rounded to the nearest value.
data::Image resize_bilinear(const data::Image& img, int out_h, int out_w);

// Each pixel repeated factor x factor times (sharp pixels, as a model sees them).
data::Image upscale_nearest(const data::Image& img, int factor);

// Images side by side, top-aligned, `gap` pixels apart, on a background of `fill`.
data::Image hconcat(const std::vector<data::Image>& images, int gap, std::uint8_t fill = 255);

// The model's input for one image: resized to side x side if needed, scaled to [0, 1] and
// normalised per channel with the weights file's mean and std -> (1, 3, side, side) float32.
Tensor to_model_input(const data::Image& img, const Normalization& norm, int side);

}  // namespace pw::app
