#include "data/augment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace pw::data {

namespace {

// float -> uint8 as torch's clamp(0, 255).to(uint8): clamp, then truncate toward zero.
std::uint8_t to_u8(float v) {
  return static_cast<std::uint8_t>(std::clamp(v, 0.0f, 255.0f));
}

// torchvision's _blend: ratio * img1 + (1 - ratio) * img2, in float32.
Image blend(const Image& img1, const Image& img2, double ratio) {
  const float r = static_cast<float>(ratio);
  Image out(img1.channels, img1.height, img1.width);
  for (std::size_t i = 0; i < out.pixels.size(); ++i)
    out.pixels[i] = to_u8(r * img1.pixels[i] + (1.0f - r) * img2.pixels[i]);
  return out;
}

// Luma with ITU-R 601 weights truncated to uint8, replicated to every channel
// (torchvision's rgb_to_grayscale(num_output_channels=C) on uint8).
Image grayscale(const Image& img) {
  if (img.channels == 1) return img;
  PW_CHECK(img.channels == 3, "[grayscale] expects 1 or 3 channels, got {}", img.channels);
  Image out(img.channels, img.height, img.width);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const float l =
          0.2989f * img.at(0, y, x) + 0.587f * img.at(1, y, x) + 0.114f * img.at(2, y, x);
      const std::uint8_t g = to_u8(l);
      for (int c = 0; c < img.channels; ++c) out.at(c, y, x) = g;
    }
  return out;
}

// Nearest-neighbour resampling: output pixel (x, y) takes the input at
// (sx, sy) = src(x, y), in pixel-index coordinates, or `fill` outside the image.
template <typename Src>
Image resample_nearest(const Image& img, std::uint8_t fill, Src src) {
  Image out(img.channels, img.height, img.width, fill);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const auto [sx, sy] = src(static_cast<double>(x), static_cast<double>(y));
      // grid_sample's nearest mode rounds half to even (std::nearbyint in the default mode).
      const double ix = std::nearbyint(sx), iy = std::nearbyint(sy);
      if (ix < 0 || iy < 0 || ix > img.width - 1 || iy > img.height - 1) continue;
      for (int c = 0; c < img.channels; ++c)
        out.at(c, y, x) = img.at(c, static_cast<int>(iy), static_cast<int>(ix));
    }
  return out;
}

}  // namespace

Image crop(const Image& img, int dx, int dy, int padding) {
  PW_CHECK(dx >= 0 && dy >= 0 && dx <= 2 * padding && dy <= 2 * padding,
           "[crop] offset ({}, {}) outside [0, {}]", dx, dy, 2 * padding);
  Image out(img.channels, img.height, img.width, 0);
  for (int c = 0; c < img.channels; ++c)
    for (int y = 0; y < img.height; ++y) {
      const int sy = y + dy - padding;
      if (sy < 0 || sy >= img.height) continue;
      for (int x = 0; x < img.width; ++x) {
        const int sx = x + dx - padding;
        if (sx >= 0 && sx < img.width) out.at(c, y, x) = img.at(c, sy, sx);
      }
    }
  return out;
}

Image hflip(const Image& img) {
  Image out(img.channels, img.height, img.width);
  for (int c = 0; c < img.channels; ++c)
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x) out.at(c, y, x) = img.at(c, y, img.width - 1 - x);
  return out;
}

Image rotate(const Image& img, double degrees, std::uint8_t fill) {
  // Inverse map of a counter-clockwise rotation on screen (y pointing down) about the centre.
  const double t = degrees * std::numbers::pi / 180.0;
  const double cs = std::cos(t), sn = std::sin(t);
  const double cx = (img.width - 1) / 2.0, cy = (img.height - 1) / 2.0;
  return resample_nearest(img, fill, [&](double x, double y) {
    const double dx = x - cx, dy = y - cy;
    return std::pair{cs * dx - sn * dy + cx, sn * dx + cs * dy + cy};
  });
}

Image shear_x(const Image& img, double m, std::uint8_t fill) {
  // Pixel centres sit at index + 0.5 from the top-left corner, the shear's fixed point.
  return resample_nearest(img, fill, [&](double x, double y) {
    return std::pair{x + m * (y + 0.5), y};
  });
}

Image shear_y(const Image& img, double m, std::uint8_t fill) {
  return resample_nearest(img, fill, [&](double x, double y) {
    return std::pair{x, y + m * (x + 0.5)};
  });
}

Image translate(const Image& img, int tx, int ty, std::uint8_t fill) {
  Image out(img.channels, img.height, img.width, fill);
  for (int c = 0; c < img.channels; ++c)
    for (int y = 0; y < img.height; ++y) {
      const int sy = y - ty;
      if (sy < 0 || sy >= img.height) continue;
      for (int x = 0; x < img.width; ++x) {
        const int sx = x - tx;
        if (sx >= 0 && sx < img.width) out.at(c, y, x) = img.at(c, sy, sx);
      }
    }
  return out;
}

Image adjust_brightness(const Image& img, double factor) {
  return blend(img, Image(img.channels, img.height, img.width, 0), factor);
}

Image adjust_saturation(const Image& img, double factor) {
  if (img.channels == 1) return img;
  return blend(img, grayscale(img), factor);
}

Image adjust_contrast(const Image& img, double factor) {
  // The mean of the (truncated) grayscale image stays fractional, as in torchvision.
  const Image gray = grayscale(img);
  double sum = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) sum += gray.at(0, y, x);
  const float mean = static_cast<float>(sum / (img.height * img.width));
  const float r = static_cast<float>(factor);
  Image out(img.channels, img.height, img.width);
  for (std::size_t i = 0; i < out.pixels.size(); ++i)
    out.pixels[i] = to_u8(r * img.pixels[i] + (1.0f - r) * mean);
  return out;
}

Image adjust_sharpness(const Image& img, double factor) {
  if (img.height <= 2 || img.width <= 2) return img;
  // The "degenerate" image: the kernel [[1,1,1],[1,5,1],[1,1,1]]/13 on interior pixels, rounded;
  // the border keeps the original values (PIL's ImageFilter.SMOOTH, as torchvision does it).
  Image smooth = img;
  for (int c = 0; c < img.channels; ++c)
    for (int y = 1; y + 1 < img.height; ++y)
      for (int x = 1; x + 1 < img.width; ++x) {
        float s = 0;
        for (int ky = -1; ky <= 1; ++ky)
          for (int kx = -1; kx <= 1; ++kx)
            s += (ky == 0 && kx == 0 ? 5.0f : 1.0f) * img.at(c, y + ky, x + kx);
        smooth.at(c, y, x) = to_u8(std::nearbyint(s / 13.0f));
      }
  return blend(img, smooth, factor);
}

Image posterize(const Image& img, int bits) {
  PW_CHECK(bits >= 0 && bits <= 8, "[posterize] bits must be in 0..8, got {}", bits);
  const auto mask = static_cast<std::uint8_t>(0xFF << (8 - bits));
  Image out = img;
  for (auto& v : out.pixels) v &= mask;
  return out;
}

Image solarize(const Image& img, double threshold) {
  Image out = img;
  for (auto& v : out.pixels)
    if (v >= threshold) v = static_cast<std::uint8_t>(255 - v);
  return out;
}

Image invert(const Image& img) {
  Image out = img;
  for (auto& v : out.pixels) v = static_cast<std::uint8_t>(255 - v);
  return out;
}

Image autocontrast(const Image& img) {
  Image out = img;
  const std::size_t plane = static_cast<std::size_t>(img.height * img.width);
  for (int c = 0; c < img.channels; ++c) {
    auto* p = out.pixels.data() + c * plane;
    const auto [lo_it, hi_it] = std::minmax_element(p, p + plane);
    const float lo = *lo_it, hi = *hi_it;
    if (hi == lo) continue;  // a flat channel stays as it is
    const float scale = 255.0f / (hi - lo);
    for (std::size_t i = 0; i < plane; ++i) p[i] = to_u8((p[i] - lo) * scale);
  }
  return out;
}

Image equalize(const Image& img) {
  Image out = img;
  const std::size_t plane = static_cast<std::size_t>(img.height * img.width);
  for (int c = 0; c < img.channels; ++c) {
    auto* p = out.pixels.data() + c * plane;
    std::array<std::int64_t, 256> hist{};
    for (std::size_t i = 0; i < plane; ++i) ++hist[p[i]];
    // step = (count of all pixels except those of the last nonzero bin) / 255, floored; when it
    // is 0 (e.g. a single value) the channel is left unchanged, as PIL does.
    int last = 255;
    while (last > 0 && hist[last] == 0) --last;
    const std::int64_t step = (static_cast<std::int64_t>(plane) - hist[last]) / 255;
    if (step == 0) continue;
    std::array<std::uint8_t, 256> lut{};
    std::int64_t cum = 0;
    for (int v = 0; v < 256; ++v) {
      lut[v] = static_cast<std::uint8_t>(std::min<std::int64_t>((cum + step / 2) / step, 255));
      cum += hist[v];
    }
    for (std::size_t i = 0; i < plane; ++i) p[i] = lut[p[i]];
  }
  return out;
}

Image cutout(const Image& img, int cy, int cx, int size, const std::uint8_t* fill) {
  Image out = img;
  const int y0 = std::clamp(cy - size / 2, 0, img.height),
            y1 = std::clamp(cy + size / 2, 0, img.height);
  const int x0 = std::clamp(cx - size / 2, 0, img.width),
            x1 = std::clamp(cx + size / 2, 0, img.width);
  for (int c = 0; c < img.channels; ++c)
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) out.at(c, y, x) = fill[c];
  return out;
}

Image random_crop(const Image& img, int padding, Generator& gen) {
  const auto n = static_cast<std::uint64_t>(2 * padding + 1);
  const int dx = static_cast<int>(gen.randint(n));
  const int dy = static_cast<int>(gen.randint(n));
  return crop(img, dx, dy, padding);
}

Image random_hflip(const Image& img, Generator& gen, double p) {
  return gen.uniform() < p ? hflip(img) : img;
}

Image random_cutout(const Image& img, int size, CutoutFill fill, Generator& gen) {
  // The CIFAR-10 mean (0.4914, 0.4822, 0.4465) * 255, rounded.
  static constexpr std::uint8_t kMean[3] = {125, 123, 114};
  static constexpr std::uint8_t kZero[3] = {0, 0, 0};
  PW_CHECK(img.channels <= 3, "[cutout] expects at most 3 channels, got {}", img.channels);
  const int cy = static_cast<int>(gen.randint(static_cast<std::uint64_t>(img.height)));
  const int cx = static_cast<int>(gen.randint(static_cast<std::uint64_t>(img.width)));
  return cutout(img, cy, cx, size, fill == CutoutFill::Mean ? kMean : kZero);
}

}  // namespace pw::data
