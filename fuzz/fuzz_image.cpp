// The image reader (stb_image with PNG, JPEG, BMP and PNM only) on arbitrary bytes: the size
// limit before decoding, truncated files, the decoders themselves.
#include "data/decode.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return pw::fuzz::expect_errors_only(
      [&] { pw::data::decode_image(std::span<const std::uint8_t>(data, size), "fuzz"); });
}
