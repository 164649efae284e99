// Reading image files (PNG, JPEG, BMP, PPM/PGM): the one place the image decoder (stb_image) is
// called, so that the decoder can be swapped in one spot.
#pragma once
#include <filesystem>

#include "data/image.h"

namespace pw::data {

// What a file's header says, without decoding the pixels.
struct ImageHeader {
  int width = 0;
  int height = 0;
  int channels = 0;  // in the file: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA
};

// Reads the header of an image file; a missing, unreadable or undecodable file is a one-line
// pw::Error naming the file and the reason. Thread-safe.
ImageHeader read_image_header(const std::filesystem::path& path);

// Decodes an image file as 3-channel RGB (grey is replicated, alpha dropped); errors as
// read_image_header's. Thread-safe.
Image load_image(const std::filesystem::path& path);

}  // namespace pw::data
