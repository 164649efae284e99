// The CIFAR-10 folder reader: the input is the folder's files joined by "\n#FILE#\n" in the
// order of kFiles (a missing part is a missing file); the first byte chooses the limits.
#include "data/cifar10.h"
#include "fuzz_util.h"

namespace {
constexpr const char* kFiles[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                  "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
                                  "batches.meta.txt"};
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool limited = data[0] & 1;
  const auto dir = pw::fuzz::scratch_dir() / "cifar-10-batches-bin";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto parts =
      pw::fuzz::split(std::span<const std::uint8_t>(data + 1, size - 1), "\n#FILE#\n");
  for (std::size_t i = 0; i < parts.size() && i < std::size(kFiles); ++i)
    pw::fuzz::write_bytes(dir / kFiles[i], parts[i]);
  return pw::fuzz::expect_errors_only(
      [&] { pw::data::read_cifar10(dir.parent_path(), limited ? 3 : -1, limited ? 2 : -1); });
}
