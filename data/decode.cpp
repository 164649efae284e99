#include "data/decode.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <system_error>
#include <vector>

#include "core/error.h"

// stb's implementations are compiled here, once for the whole program: stb_image, which decodes,
// and stb_image_write, which apps/image.cpp's write_png uses (one place for both, so that stb's
// warnings are silenced once). stb is C-style code that our warning flags (with -Werror) would
// reject, so its warnings are silenced locally. stb_image is the reviewed copy in third_party/stb
// (see its README; Debian's 2.27 has memory bugs a crafted file reaches), with only the decoders
// of the formats the commands promise and no FILE* API: files come in through the callbacks
// below, which bound them and notice a read past their end.
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

namespace pw::data {
namespace fs = std::filesystem;

namespace {

// A file as stb reads it, through its I/O callbacks: the bytes in memory, or an open file (for
// headers, which need only the first few bytes). Once the bytes are used up stb feeds its
// decoder zeros; a read asked for after that (or a skip past the end) marks the file as
// truncated, which stb itself accepts for several formats.
struct StbSource {
  std::span<const std::uint8_t> bytes;  // when file is null
  std::FILE* file = nullptr;
  std::size_t pos = 0;
  bool read_past_end = false;
};

int stb_read(void* user, char* data, int size) {
  auto* s = static_cast<StbSource*>(user);
  const auto want = static_cast<std::size_t>(std::max(size, 0));
  std::size_t n = 0;
  if (s->file) {
    n = std::fread(data, 1, want, s->file);
  } else {
    n = std::min(want, s->bytes.size() - s->pos);
    if (n > 0) std::memcpy(data, s->bytes.data() + s->pos, n);
  }
  // stb asks for a whole buffer at a time, so a short read is normal; asking again once
  // nothing is left is not.
  if (want > 0 && n == 0) s->read_past_end = true;
  s->pos += n;
  return static_cast<int>(n);
}

void stb_skip(void* user, int n) {
  auto* s = static_cast<StbSource*>(user);
  if (s->file) {
    // A skip past the end succeeds for fseek; the next read then comes up short.
    if (std::fseek(s->file, n, SEEK_CUR) != 0) s->read_past_end = true;
    return;
  }
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
  if (s->file) return std::feof(s->file) ? 1 : 0;
  return s->pos >= s->bytes.size() ? 1 : 0;
}

constexpr stbi_io_callbacks kStbCallbacks{stb_read, stb_skip, stb_eof};

std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown error";
}

// The header of `source` as stb's info reads it, checked against kMaxImagePixels.
ImageHeader read_header(StbSource& source, const std::string& name) {
  ImageHeader h;
  // stb's failure reason is thread-local, so worker threads may read headers side by side.
  if (!stbi_info_from_callbacks(&kStbCallbacks, &source, &h.width, &h.height, &h.channels)) {
    // stb's reason when no decoder recognises the file (the others name a corrupt format).
    const bool unknown = stb_reason().rfind("Image not of any known type", 0) == 0;
    fail("[image] cannot decode '{}': {}{}", name, stb_reason(),
         unknown ? " (PNG, JPEG, BMP and PPM/PGM are read)" : "");
  }
  PW_CHECK(!source.read_past_end, "[image] cannot decode '{}': the file ends inside its header",
           name);
  PW_CHECK(h.width > 0 && h.height > 0 && std::int64_t{h.width} * h.height <= kMaxImagePixels,
           "[image] cannot decode '{}': {}x{} pixels is more than the limit of {}", name, h.width,
           h.height, kMaxImagePixels);
  return h;
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

// Opens `path` for reading; errors say whether it is missing, a folder, unreadable (and why) or
// larger than kMaxImageFileBytes.
File open_image(const fs::path& path) {
  std::error_code ec;
  PW_CHECK(fs::exists(path, ec), "[image] cannot read '{}': no such file", path.string());
  PW_CHECK(!fs::is_directory(path, ec), "[image] cannot read '{}': it is a directory",
           path.string());
  File f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f)
    fail("[image] cannot read '{}': {}", path.string(),
         std::error_code(errno, std::generic_category()).message());
  const auto size = fs::file_size(path, ec);
  PW_CHECK(!ec && size <= kMaxImageFileBytes,
           "[image] cannot read '{}': {} bytes is more than the limit of {}", path.string(),
           ec ? 0 : size, kMaxImageFileBytes);
  return f;
}

// stb's PNG reader grows its buffer for the compressed data to the length a chunk claims before
// it reads the chunk, so a 60-byte file whose IDAT claims 400 MB made it allocate 800 MB. The
// chunk lengths are therefore checked against the bytes present first: each chunk (length,
// type, data, CRC) must end inside the file, up to IEND, after which stb reads nothing.
void check_png_chunks(std::span<const std::uint8_t> bytes, const std::string& name) {
  constexpr std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || !std::equal(kSignature, kSignature + 8, bytes.begin())) return;
  for (std::size_t pos = 8;;) {
    PW_CHECK(bytes.size() - pos >= 12,
             "[image] cannot decode '{}': the file is truncated (it ends before the PNG's IEND "
             "chunk)",
             name);
    const std::uint64_t length = std::uint64_t{bytes[pos]} << 24 |
                                 std::uint64_t{bytes[pos + 1]} << 16 |
                                 std::uint64_t{bytes[pos + 2]} << 8 | bytes[pos + 3];
    const std::string type(reinterpret_cast<const char*>(bytes.data() + pos + 4), 4);
    std::string shown = type;  // a hostile type may hold any byte, a newline too
    for (char& c : shown)
      if (!std::isalpha(static_cast<unsigned char>(c))) c = '?';
    PW_CHECK(length <= bytes.size() - pos - 12,
             "[image] cannot decode '{}': the file is truncated (PNG chunk {} at byte {} claims "
             "{} bytes, {} are left)",
             name, shown, pos, length, bytes.size() - pos - 12);
    if (type == "IEND") return;
    pos += 12 + length;
  }
}

}  // namespace

ImageHeader read_image_header(const fs::path& path) {
  const File f = open_image(path);
  StbSource source{{}, f.get()};
  return read_header(source, path.string());
}

Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name) {
  // The header first: the size is checked before the decoder allocates anything for it.
  StbSource header_source{bytes};
  const ImageHeader h = read_header(header_source, name);
  check_png_chunks(bytes, name);
  StbSource source{bytes};
  int w = 0, ht = 0, channels_in_file = 0;
  // Asking for 3 channels makes stb convert grey, grey+alpha and RGBA to RGB for us.
  std::unique_ptr<stbi_uc, void (*)(void*)> hwc(
      stbi_load_from_callbacks(&kStbCallbacks, &source, &w, &ht, &channels_in_file, 3),
      stbi_image_free);
  if (!hwc) fail("[image] cannot decode '{}': {}", name, stb_reason());
  PW_CHECK(!source.read_past_end,
           "[image] cannot decode '{}': the file is truncated (its data ends before the image "
           "does)",
           name);
  PW_CHECK(w == h.width && ht == h.height,
           "[image] cannot decode '{}': its header says {}x{}, its data {}x{}", name, h.width,
           h.height, w, ht);
  Image img(3, ht, w);
  const std::size_t plane = static_cast<std::size_t>(ht) * w;
  for (std::size_t i = 0; i < plane; ++i)
    for (std::size_t c = 0; c < 3; ++c) img.pixels[c * plane + i] = hwc.get()[i * 3 + c];
  return img;
}

Image load_image(const fs::path& path) {
  const File f = open_image(path);
  // The whole file (at most kMaxImageFileBytes), read as it comes rather than sized up front.
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, f.get())) > 0;) {
    bytes.insert(bytes.end(), chunk, chunk + n);
    PW_CHECK(bytes.size() <= kMaxImageFileBytes,
             "[image] cannot read '{}': more than the limit of {} bytes", path.string(),
             kMaxImageFileBytes);
  }
  PW_CHECK(!std::ferror(f.get()), "[image] cannot read '{}': read error", path.string());
  return decode_image(bytes, path.string());
}

}  // namespace pw::data
