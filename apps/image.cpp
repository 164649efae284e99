#include "apps/image.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "core/error.h"
#include "io/file_io.h"

// The stb implementations are compiled here, once for the whole program. stb is C-style code
// that our warning flags (with -Werror) would reject, so its warnings are silenced locally.
// stb_image is the reviewed copy in third_party/stb (see its README), with only the decoders of
// the formats the commands promise and no FILE* API: files are read by load_image, which can
// then bound their size and check them before and after decoding.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wunused-variable"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG  // readable reasons ("Corrupt PNG") rather than codes
#define STBI_NO_STDIO
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#define STBI_MAX_DIMENSIONS 16384
#include "third_party/stb/stb_image.h"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace pw::app {
namespace fs = std::filesystem;

namespace {

// stb reads a file held in memory through these callbacks. Once the bytes are used up stb feeds
// its decoder zeros; a read asked for after that (or a skip past the end) marks the file as
// truncated, which stb itself accepts for several formats.
struct StbSource {
  std::span<const std::uint8_t> bytes;
  std::size_t pos = 0;
  bool read_past_end = false;
};

int stb_read(void* user, char* data, int size) {
  auto* s = static_cast<StbSource*>(user);
  const std::size_t want = static_cast<std::size_t>(std::max(size, 0));
  const std::size_t n = std::min(want, s->bytes.size() - s->pos);
  if (want > 0 && n == 0) s->read_past_end = true;
  if (n > 0) std::memcpy(data, s->bytes.data() + s->pos, n);
  s->pos += n;
  return static_cast<int>(n);
}

void stb_skip(void* user, int n) {
  auto* s = static_cast<StbSource*>(user);
  if (n < 0) {  // stb's "unget"
    s->pos -= std::min(s->pos, static_cast<std::size_t>(-static_cast<std::int64_t>(n)));
    return;
  }
  const std::size_t left = s->bytes.size() - s->pos;
  if (static_cast<std::size_t>(n) > left) s->read_past_end = true;
  s->pos += std::min(left, static_cast<std::size_t>(n));
}

int stb_eof(void* user) {
  const auto* s = static_cast<const StbSource*>(user);
  return s->pos >= s->bytes.size() ? 1 : 0;
}

constexpr stbi_io_callbacks kStbCallbacks{stb_read, stb_skip, stb_eof};

}  // namespace

data::Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name) {
  const auto reason = [] {
    const char* r = stbi_failure_reason();
    return std::string(r ? r : "unknown error");
  };
  // The header first: the size is checked before the decoder allocates anything for it.
  int w = 0, h = 0, channels_in_file = 0;
  StbSource header{bytes};
  if (!stbi_info_from_callbacks(&kStbCallbacks, &header, &w, &h, &channels_in_file)) {
    // stb's reason when no decoder recognises the file (the others name a corrupt format).
    const bool unknown = reason().rfind("Image not of any known type", 0) == 0;
    fail("[image] cannot decode '{}': {}{}", name, reason(),
         unknown ? " (PNG, JPEG, BMP and PPM/PGM are read)" : "");
  }
  PW_CHECK(!header.read_past_end, "[image] cannot decode '{}': the file ends inside its header",
           name);
  PW_CHECK(w > 0 && h > 0 && std::int64_t{w} * h <= kMaxImagePixels,
           "[image] cannot decode '{}': {}x{} pixels is more than the limit of {}", name, w, h,
           kMaxImagePixels);
  StbSource source{bytes};
  int dw = 0, dh = 0;
  // Asking for 3 channels makes stb convert grey, grey+alpha and RGBA to RGB for us.
  std::unique_ptr<stbi_uc, void (*)(void*)> hwc(
      stbi_load_from_callbacks(&kStbCallbacks, &source, &dw, &dh, &channels_in_file, 3),
      stbi_image_free);
  if (!hwc) fail("[image] cannot decode '{}': {}", name, reason());
  PW_CHECK(!source.read_past_end,
           "[image] cannot decode '{}': the file is truncated (its data ends before the image "
           "does)",
           name);
  PW_CHECK(dw == w && dh == h, "[image] cannot decode '{}': its header says {}x{}, its data {}x{}",
           name, w, h, dw, dh);
  data::Image img(3, h, w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.at(c, y, x) = hwc.get()[(static_cast<std::size_t>(y) * w + x) * 3 + c];
  return img;
}

data::Image load_image(const fs::path& path) {
  std::error_code ec;
  PW_CHECK(fs::exists(path, ec), "[image] cannot read '{}': no such file", path.string());
  PW_CHECK(!fs::is_directory(path, ec), "[image] cannot read '{}': it is a directory",
           path.string());
  const auto size = fs::file_size(path, ec);
  PW_CHECK(!ec && size <= kMaxImageFileBytes,
           "[image] cannot read '{}': {} bytes is more than the limit of {}", path.string(),
           ec ? 0 : size, kMaxImageFileBytes);
  return decode_image(read_file(path.string()), path.string());
}

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

data::Image resize_bilinear(const data::Image& img, int out_h, int out_w) {
  if (img.height == out_h && img.width == out_w) return img;
  const std::size_t plane = static_cast<std::size_t>(img.height) * img.width;
  data::Image out(img.channels, out_h, out_w);
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

Tensor to_model_input(const data::Image& img, const Normalization& norm, int side) {
  PW_CHECK(img.channels == 3, "[image] the model takes RGB images, got {} channels", img.channels);
  PW_CHECK(norm.mean.size() == 3 && norm.std.size() == 3,
           "[image] normalisation needs 3 means and 3 stds");
  const data::Image sized = resize_bilinear(img, side, side);
  const std::size_t plane = static_cast<std::size_t>(side) * side;
  std::vector<float> x(3 * plane);
  for (std::size_t c = 0; c < 3; ++c)
    for (std::size_t i = 0; i < plane; ++i)
      x[c * plane + i] =
          static_cast<float>((sized.pixels[c * plane + i] / 255.0 - norm.mean[c]) / norm.std[c]);
  return from_vector(x, {1, 3, side, side});
}

}  // namespace pw::app
