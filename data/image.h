// A small uint8 image (C, H, W), the unit every augmentation works on. CIFAR-10 images are
// 3x32x32; tests use tiny ones with hand-checkable pixels.
#pragma once
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace pw::data {

// The largest image (C*H*W bytes) made: sizes computed from a file or from flags (an upscale
// factor, a grid of patches) are refused above it rather than overflowing or exhausting memory.
inline constexpr std::int64_t kMaxImageBytes = std::int64_t{1} << 30;

// C*H*W, checked against kMaxImageBytes (C*H first: the product of three ints could overflow
// even 64 bits, that of two cannot).
inline std::size_t image_bytes(int c, int h, int w) {
  const bool fits = c >= 0 && h >= 0 && w >= 0 && std::int64_t{c} * h <= kMaxImageBytes &&
                    std::int64_t{c} * h * w <= kMaxImageBytes;
  PW_CHECK(fits, "[image] a {}x{}x{} image (C x H x W) is larger than the limit of {} bytes", c, h,
           w, kMaxImageBytes);
  return static_cast<std::size_t>(std::int64_t{c} * h * w);
}

struct Image {
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<std::uint8_t> pixels;  // (C, H, W), row-major

  Image() = default;
  // An image of the given size with every pixel set to `value`.
  Image(int c, int h, int w, std::uint8_t value = 0)
      : channels(c), height(h), width(w), pixels(image_bytes(c, h, w), value) {}
  // A copy of C*H*W bytes laid out CHW (e.g. a record of Dataset::images).
  static Image from_chw(const std::uint8_t* chw, int c, int h, int w) {
    Image im(c, h, w);
    im.pixels.assign(chw, chw + image_bytes(c, h, w));
    return im;
  }

  std::uint8_t& at(int c, int y, int x) { return pixels[index(c, y, x)]; }
  std::uint8_t at(int c, int y, int x) const { return pixels[index(c, y, x)]; }
  bool operator==(const Image&) const = default;

 private:
  std::size_t index(int c, int y, int x) const {
    return (static_cast<std::size_t>(c) * height + y) * width + x;
  }
};

}  // namespace pw::data
