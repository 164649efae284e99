// The safetensors reader on arbitrary bytes: header length, JSON shape, offsets, dtypes,
// UTF-8, the data checksum.
#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return pw::fuzz::expect_errors_only(
      [&] { pw::parse_safetensors(std::span<const std::uint8_t>(data, size), "fuzz"); });
}
