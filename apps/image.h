// Image files for the inspection commands: reading PNG/JPEG/BMP/PPM (data/decode.h), resizing
// (data/resize.h), turning pixels into the model's normalised input, and writing PNG
// (stb_image_write).
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "apps/weights.h"
#include "core/tensor.h"
#include "data/decode.h"
#include "data/image.h"
#include "data/resize.h"

namespace pw::app {

// Reads a PNG, JPEG, BMP or PPM/PGM file as 3-channel RGB (grey is replicated, alpha dropped);
// a missing or undecodable file is a pw::Error naming the file and the reason.
using data::load_image;

// Writes an RGB (or grey) image as PNG, atomically; errors name the file.
void write_png(const std::filesystem::path& path, const data::Image& img);

// Antialiased bilinear resize of a float plane or a uint8 image (data/resize.h).
using data::resize_bilinear;

// Each pixel repeated factor x factor times (sharp pixels, as a model sees them).
data::Image upscale_nearest(const data::Image& img, int factor);

// Images side by side, top-aligned, `gap` pixels apart, on a background of `fill`.
data::Image hconcat(const std::vector<data::Image>& images, int gap, std::uint8_t fill = 255);

// The model's input for one image: timm's evaluation transform (the shorter side resized to
// floor(side / crop_pct), then the centre side x side; data::eval_transform), scaled to [0, 1]
// and normalised per channel with the weights file's mean and std -> (1, 3, side, side) float32.
Tensor to_model_input(const data::Image& img, const Normalization& norm, int side,
                      double crop_pct = 1.0);

}  // namespace pw::app
