#include "data/decode.h"

#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>

#include "core/error.h"

// stb's implementations are compiled here, once for the whole program: stb_image, which decodes,
// and stb_image_write, which apps/image.cpp's write_png uses (one place for both, so that stb's
// warnings are silenced once). stb is C-style code that our warning flags (with -Werror) would
// reject, so its warnings are silenced locally.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG  // readable reasons ("Corrupt PNG") rather than codes
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace pw::data {
namespace fs = std::filesystem;

namespace {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

// Opens `path` for reading; errors say whether it is missing, a folder or unreadable (and why).
File open_image(const fs::path& path) {
  std::error_code ec;
  PW_CHECK(fs::exists(path, ec), "[image] cannot read '{}': no such file", path.string());
  PW_CHECK(!fs::is_directory(path, ec), "[image] cannot read '{}': it is a directory",
           path.string());
  File f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f)
    fail("[image] cannot read '{}': {}", path.string(),
         std::error_code(errno, std::generic_category()).message());
  return f;
}

}  // namespace

ImageHeader read_image_header(const fs::path& path) {
  const File f = open_image(path);
  ImageHeader h;
  // stb's failure reason is thread-local, so worker threads may read headers side by side.
  if (!stbi_info_from_file(f.get(), &h.width, &h.height, &h.channels))
    fail("[image] cannot decode '{}': {}", path.string(), stbi_failure_reason());
  return h;
}

Image load_image(const fs::path& path) {
  const File f = open_image(path);
  int w = 0, h = 0, channels_in_file = 0;
  // Asking for 3 channels makes stb convert grey, grey+alpha and RGBA to RGB for us.
  std::unique_ptr<stbi_uc, void (*)(void*)> hwc(
      stbi_load_from_file(f.get(), &w, &h, &channels_in_file, 3), stbi_image_free);
  if (!hwc) fail("[image] cannot decode '{}': {}", path.string(), stbi_failure_reason());
  Image img(3, h, w);
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  for (std::size_t i = 0; i < plane; ++i)
    for (std::size_t c = 0; c < 3; ++c) img.pixels[c * plane + i] = hwc.get()[i * 3 + c];
  return img;
}

}  // namespace pw::data
