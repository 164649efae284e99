// Synthetic image folders (torchvision's ImageFolder layout) of PNG and JPEG files written by
// the tests, so that no test needs a real data set.
#pragma once
#include <stb_image_write.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/random.h"

namespace pw::testing {

// An h x w image of class `label` with `channels` (1 grey, 3 RGB, 4 RGBA) as stb writes it
// (HWC): the class's own colour (red, green, blue, ...), a darker band whose row depends on the
// class, and noise from `seed`. Learnable from colour alone, so tiny models fit it quickly.
inline std::vector<std::uint8_t> class_pattern(int label, int h, int w, int channels,
                                               std::uint64_t seed) {
  Generator gen(seed);
  std::vector<std::uint8_t> hwc(static_cast<std::size_t>(h * w * channels));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const bool band = (y * 4 / h) == label % 4;
      for (int c = 0; c < channels; ++c) {
        int v = c == 3 ? 255 : (c == label % 3 ? 200 : 50) - (band ? 40 : 0);
        if (channels < 3) v = 60 + 60 * (label % 3) - (band ? 40 : 0);
        if (c < 3) v += static_cast<int>(gen.randint(30));
        hwc[static_cast<std::size_t>((y * w + x) * channels + c)] = static_cast<std::uint8_t>(v);
      }
    }
  return hwc;
}

// Writes class_pattern as `path` (.png or .jpg/.jpeg, by the extension).
inline void write_class_image(const std::filesystem::path& path, int label, int h, int w,
                              int channels = 3, std::uint64_t seed = 0) {
  std::filesystem::create_directories(path.parent_path());
  const auto hwc = class_pattern(label, h, w, channels, seed);
  const std::string ext = path.extension().string();
  const int ok = ext == ".png"
                     ? stbi_write_png(path.c_str(), w, h, channels, hwc.data(), w * channels)
                     : stbi_write_jpg(path.c_str(), w, h, channels, hwc.data(), 95);
  REQUIRE(ok != 0);
}

// root/train/<class>/ with `per_class` images of each class and, unless `val` is 0,
// root/val/<class>/ with `val` each: PNGs and JPEGs alternating, of a few sizes (not square,
// not the training size) so that resizing and cropping are exercised.
inline void write_image_folder(const std::filesystem::path& root,
                               const std::vector<std::string>& classes, int per_class, int val) {
  const int sizes[][2] = {{20, 28}, {24, 24}, {30, 18}};
  for (std::size_t k = 0; k < classes.size(); ++k) {
    const int label = static_cast<int>(k);
    for (int split = 0; split < 2; ++split) {
      const int n = split == 0 ? per_class : val;
      for (int i = 0; i < n; ++i) {
        const auto* s = sizes[i % 3];
        const std::string name =
            (i % 2 == 0 ? "img" : "photo") + std::to_string(i) + (i % 2 == 0 ? ".png" : ".jpg");
        write_class_image(root / (split == 0 ? "train" : "val") / classes[k] / name, label, s[0],
                          s[1], 3, static_cast<std::uint64_t>(1000 * split + 100 * label + i));
      }
    }
  }
}

}  // namespace pw::testing
