#include "data/resize.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pw::data {

namespace {

// Triangle filter of half-width 1.
double triangle(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// The source taps of each output position along one axis: torch's _upsample_bilinear2d_aa
// (and PIL's ImagingResample) weights, normalised to sum to one.
struct Taps {
  std::vector<int> first;              // first source index of output i
  std::vector<std::vector<double>> w;  // weights of sources first[i], first[i] + 1, ...
};

Taps bilinear_taps(int in, int out) {
  const double scale = static_cast<double>(in) / out;
  // Shrinking widens the filter by the scale so that every source pixel contributes.
  const double support = scale >= 1.0 ? scale : 1.0;
  const double inv = scale >= 1.0 ? 1.0 / scale : 1.0;
  Taps t;
  t.first.resize(static_cast<std::size_t>(out));
  t.w.resize(static_cast<std::size_t>(out));
  for (int i = 0; i < out; ++i) {
    const double center = scale * (i + 0.5);
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in);
    std::vector<double> w;
    double total = 0;
    for (int j = lo; j < hi; ++j) {
      w.push_back(triangle((j - center + 0.5) * inv));
      total += w.back();
    }
    for (double& v : w) v /= total;
    t.first[static_cast<std::size_t>(i)] = lo;
    t.w[static_cast<std::size_t>(i)] = std::move(w);
  }
  return t;
}

}  // namespace

std::vector<float> resize_bilinear(const std::vector<float>& plane, int h, int w, int out_h,
                                   int out_w) {
  PW_CHECK(h > 0 && w > 0 && out_h > 0 && out_w > 0,
           "[resize] sizes must be positive: {}x{} -> {}x{}", h, w, out_h, out_w);
  PW_CHECK(plane.size() == static_cast<std::size_t>(h) * w,
           "[resize] plane has {} values, not {}x{}", plane.size(), h, w);
  // Separable: rows first (h, out_w), then columns (out_h, out_w).
  const Taps tx = bilinear_taps(w, out_w), ty = bilinear_taps(h, out_h);
  std::vector<double> rows(static_cast<std::size_t>(h) * out_w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < out_w; ++x) {
      double s = 0;
      const auto& wx = tx.w[static_cast<std::size_t>(x)];
      for (std::size_t k = 0; k < wx.size(); ++k)
        s += wx[k] *
             plane[static_cast<std::size_t>(y) * w + tx.first[static_cast<std::size_t>(x)] + k];
      rows[static_cast<std::size_t>(y) * out_w + x] = s;
    }
  std::vector<float> out(static_cast<std::size_t>(out_h) * out_w);
  for (int y = 0; y < out_h; ++y) {
    const auto& wy = ty.w[static_cast<std::size_t>(y)];
    for (int x = 0; x < out_w; ++x) {
      double s = 0;
      for (std::size_t k = 0; k < wy.size(); ++k)
        s += wy[k] * rows[(ty.first[static_cast<std::size_t>(y)] + k) * out_w + x];
      out[static_cast<std::size_t>(y) * out_w + x] = static_cast<float>(s);
    }
  }
  return out;
}

Image resize_bilinear(const Image& img, int out_h, int out_w) {
  if (img.height == out_h && img.width == out_w) return img;
  const std::size_t plane = static_cast<std::size_t>(img.height) * img.width;
  Image out(img.channels, out_h, out_w);
  const std::size_t out_plane = static_cast<std::size_t>(out_h) * out_w;
  for (int c = 0; c < img.channels; ++c) {
    std::vector<float> in(img.pixels.begin() + static_cast<std::ptrdiff_t>(c * plane),
                          img.pixels.begin() + static_cast<std::ptrdiff_t>((c + 1) * plane));
    const auto r = resize_bilinear(in, img.height, img.width, out_h, out_w);
    for (std::size_t i = 0; i < out_plane; ++i)
      out.pixels[c * out_plane + i] =
          static_cast<std::uint8_t>(std::clamp(std::lround(r[i]), 0L, 255L));
  }
  return out;
}

Image resize_shorter_side(const Image& img, int size) {
  PW_CHECK(size > 0 && img.height > 0 && img.width > 0,
           "[resize] cannot resize a {}x{} image to shorter side {}", img.height, img.width, size);
  const int s = std::min(img.height, img.width), l = std::max(img.height, img.width);
  // Python's int() of the float product, as torchvision computes it.
  const int long_side = static_cast<int>(static_cast<double>(size) * l / s);
  return img.width <= img.height ? resize_bilinear(img, long_side, size)
                                 : resize_bilinear(img, size, long_side);
}

Image center_crop(const Image& img, int size) {
  PW_CHECK(img.height >= size && img.width >= size,
           "[center_crop] a {}x{} image is smaller than the {}x{} crop", img.height, img.width,
           size, size);
  // int(round(x)) in Python rounds half to even, as nearbyint does in the default mode.
  const int top = static_cast<int>(std::nearbyint((img.height - size) / 2.0));
  const int left = static_cast<int>(std::nearbyint((img.width - size) / 2.0));
  Image out(img.channels, size, size);
  for (int c = 0; c < img.channels; ++c)
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) out.at(c, y, x) = img.at(c, top + y, left + x);
  return out;
}

Image eval_transform(const Image& img, int size, double crop_pct) {
  PW_CHECK(crop_pct > 0 && crop_pct <= 1, "[eval_transform] crop_pct must be in (0, 1], got {}",
           crop_pct);
  const int scale_size = static_cast<int>(std::floor(size / crop_pct));
  if (img.height == size && img.width == size && scale_size == size) return img;
  return center_crop(resize_shorter_side(img, scale_size), size);
}

CropBox random_resized_crop_box(int height, int width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, Generator& gen) {
  PW_CHECK(scale_min > 0 && scale_min <= scale_max && ratio_min > 0 && ratio_min <= ratio_max,
           "[random_resized_crop] needs 0 < scale_min <= scale_max and 0 < ratio_min <= "
           "ratio_max, got scale ({}, {}) ratio ({}, {})",
           scale_min, scale_max, ratio_min, ratio_max);
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (scale_min + (scale_max - scale_min) * gen.uniform());
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * gen.uniform());
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target * aspect)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int top = static_cast<int>(gen.randint(static_cast<std::uint64_t>(height - h + 1)));
      const int left = static_cast<int>(gen.randint(static_cast<std::uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  // The fallback: the whole image, cut to the nearest allowed aspect ratio, centred.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < ratio_min)
    h = static_cast<int>(std::nearbyint(w / ratio_min));
  else if (in_ratio > ratio_max)
    w = static_cast<int>(std::nearbyint(h * ratio_max));
  return {(height - h) / 2, (width - w) / 2, h, w};
}

Image resized_crop(const Image& img, const CropBox& box, int size) {
  PW_CHECK(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
               box.top + box.height <= img.height && box.left + box.width <= img.width,
           "[resized_crop] window ({}, {}) of {}x{} is outside a {}x{} image", box.top, box.left,
           box.height, box.width, img.height, img.width);
  Image window(img.channels, box.height, box.width);
  for (int c = 0; c < img.channels; ++c)
    for (int y = 0; y < box.height; ++y)
      for (int x = 0; x < box.width; ++x) window.at(c, y, x) = img.at(c, box.top + y, box.left + x);
  return resize_bilinear(window, size, size);
}

Image random_resized_crop(const Image& img, int size, double scale_min, double scale_max,
                          double ratio_min, double ratio_max, Generator& gen) {
  return resized_crop(img,
                      random_resized_crop_box(img.height, img.width, scale_min, scale_max,
                                              ratio_min, ratio_max, gen),
                      size);
}

}  // namespace pw::data
