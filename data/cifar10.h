// CIFAR-10 in the official binary layout: six batch files of 3073-byte records (one label
// byte, then the 1024 red, 1024 green and 1024 blue bytes of a row-major 32x32 image), read
// from the extracted `cifar-10-batches-bin/` folder or straight from the .tar.gz archive.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace pw::data {

inline constexpr int kImageSide = 32;
inline constexpr int kChannels = 3;
inline constexpr std::int64_t kImageBytes = kChannels * kImageSide * kImageSide;  // 3072
inline constexpr std::int64_t kRecordBytes = 1 + kImageBytes;                     // 3073
inline constexpr int kNumClasses = 10;

// Images and labels of one split, images stored (N, 3, 32, 32) as in the files (CHW).
struct Dataset {
  std::vector<std::uint8_t> images;  // N * 3072 bytes
  std::vector<std::uint8_t> labels;  // N labels in 0..9
  std::vector<std::string> class_names;

  // Number of images.
  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  // The 3072 CHW bytes of image i.
  const std::uint8_t* image(std::int64_t i) const { return images.data() + i * kImageBytes; }
};

enum class Split { Train, Test };

struct Cifar10 {
  Dataset train;
  Dataset test;
};

// The ten class names of the official release, in label order.
std::vector<std::string> default_class_names();

// The batch file names that make up a split, in the order their records are concatenated.
std::vector<std::string> split_files(Split split);

// What `source` holds, resolved to something the reader takes: a folder with the .bin files
// (`source` itself or its `cifar-10-batches-bin/` child) or an archive (`source` if it is a
// file, or `source/cifar-10-binary.tar.gz`). Empty when it holds none of these.
std::optional<std::filesystem::path> resolve_cifar10_source(const std::filesystem::path& source);

// Reads one split from a folder or an archive; `limit` >= 0 keeps only the first `limit` images.
Dataset read_cifar10(const std::filesystem::path& source, Split split, std::int64_t limit = -1);

// Reads both splits (one pass over an archive); negative limits read everything.
Cifar10 read_cifar10(const std::filesystem::path& source, std::int64_t train_limit = -1,
                     std::int64_t test_limit = -1);

}  // namespace pw::data
