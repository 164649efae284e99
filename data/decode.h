// Reading image files (PNG, JPEG, BMP, PPM/PGM): the one place the image decoder (stb_image) is
// called, so that the decoder can be swapped in one spot. The decoder is the reviewed copy in
// third_party/stb, compiled with only these four formats; a file is bounded in bytes and in the
// pixels its header claims before anything is decoded, and a file whose data ends before its
// image does is refused (stb itself would fill the rest with zeros).
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "data/image.h"

namespace pw::data {

// The limits of the image reader: a file's size, and the pixels its header may claim (checked
// before decoding, so that a few bytes claiming a huge image cost nothing).
inline constexpr std::uint64_t kMaxImageFileBytes = std::uint64_t{256} << 20;
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 24;  // 4096 x 4096

// What a file's header says, without decoding the pixels.
struct ImageHeader {
  int width = 0;
  int height = 0;
  int channels = 0;  // in the file: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA
};

// Reads the header of an image file; a missing, unreadable, undecodable or too large file is a
// one-line pw::Error naming the file and the reason. Thread-safe.
ImageHeader read_image_header(const std::filesystem::path& path);

// Decodes an image file as 3-channel RGB (grey is replicated, alpha dropped); errors as
// read_image_header's, and a truncated file is one. Thread-safe.
Image load_image(const std::filesystem::path& path);
// The same for a file's bytes held in memory; `name` names it in errors.
Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name);

}  // namespace pw::data
