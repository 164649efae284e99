#include "apps/image.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include "core/error.h"
#include "io/file_io.h"

// The declarations only: the implementation is compiled in data/decode.cpp with stb_image's.
#include <stb_image_write.h>

namespace pw::app {
namespace fs = std::filesystem;

void write_png(const fs::path& path, const data::Image& img) {
  PW_CHECK(img.channels == 1 || img.channels == 3 || img.channels == 4,
           "[image] cannot write '{}': {} channels", path.string(), img.channels);
  PW_CHECK(img.width > 0 && img.height > 0, "[image] cannot write '{}': empty image",
           path.string());
  // stb wants interleaved (H, W, C) rows.
  const int C = img.channels;
  std::vector<std::uint8_t> hwc(img.pixels.size());
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x)
        hwc[(static_cast<std::size_t>(y) * img.width + x) * C + c] = img.at(c, y, x);
  std::vector<std::uint8_t> png;
  auto append = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<std::uint8_t>*>(context);
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    out->insert(out->end(), bytes, bytes + size);
  };
  const int ok =
      stbi_write_png_to_func(append, &png, img.width, img.height, C, hwc.data(), img.width * C);
  PW_CHECK(ok != 0, "[image] cannot encode '{}' as PNG", path.string());
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  write_file_atomic(path.string(), std::span<const std::uint8_t>(png));
}

data::Image upscale_nearest(const data::Image& img, int factor) {
  PW_CHECK(factor >= 1, "[upscale] factor must be at least 1, got {}", factor);
  data::Image out(img.channels, img.height * factor, img.width * factor);
  for (int c = 0; c < img.channels; ++c)
    for (int y = 0; y < out.height; ++y)
      for (int x = 0; x < out.width; ++x) out.at(c, y, x) = img.at(c, y / factor, x / factor);
  return out;
}

data::Image hconcat(const std::vector<data::Image>& images, int gap, std::uint8_t fill) {
  PW_CHECK(!images.empty(), "[hconcat] no images");
  int width = gap * static_cast<int>(images.size() - 1), height = 0;
  for (const auto& im : images) {
    PW_CHECK(im.channels == images.front().channels,
             "[hconcat] images have different channel counts");
    width += im.width;
    height = std::max(height, im.height);
  }
  data::Image out(images.front().channels, height, width, fill);
  int x0 = 0;
  for (const auto& im : images) {
    for (int c = 0; c < im.channels; ++c)
      for (int y = 0; y < im.height; ++y)
        for (int x = 0; x < im.width; ++x) out.at(c, y, x0 + x) = im.at(c, y, x);
    x0 += im.width + gap;
  }
  return out;
}

Tensor to_model_input(const data::Image& img, const Normalization& norm, int side,
                      double crop_pct) {
  PW_CHECK(img.channels == 3, "[image] the model takes RGB images, got {} channels", img.channels);
  PW_CHECK(norm.mean.size() == 3 && norm.std.size() == 3,
           "[image] normalisation needs 3 means and 3 stds");
  const data::Image sized = data::eval_transform(img, side, crop_pct);
  const std::size_t plane = static_cast<std::size_t>(side) * side;
  std::vector<float> x(3 * plane);
  for (std::size_t c = 0; c < 3; ++c)
    for (std::size_t i = 0; i < plane; ++i)
      x[c * plane + i] =
          static_cast<float>((sized.pixels[c * plane + i] / 255.0 - norm.mean[c]) / norm.std[c]);
  return from_vector(x, {1, 3, side, side});
}

}  // namespace pw::app
