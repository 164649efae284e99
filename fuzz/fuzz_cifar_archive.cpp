// The CIFAR-10 .tar.gz reader (gzip, ustar, GNU long names, pax headers) on arbitrary bytes.
// The first byte chooses the limits (--limit-train / --limit-test), the rest is the archive.
#include "data/cifar10.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool limited = data[0] & 1;
  const auto path = pw::fuzz::scratch_dir() / "cifar-10-binary.tar.gz";
  pw::fuzz::write_bytes(path, std::span<const std::uint8_t>(data + 1, size - 1));
  return pw::fuzz::expect_errors_only(
      [&] { pw::data::read_cifar10(path, limited ? 3 : -1, limited ? 2 : -1); });
}
