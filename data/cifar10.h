// CIFAR-10 and CIFAR-100 in their official binary layouts, read from the extracted folder or
// straight from the .tar.gz archive.
//
// CIFAR-10: `cifar-10-batches-bin/` holds five training files and `test_batch.bin` of 3073-byte
// records (one label byte, then the 1024 red, 1024 green and 1024 blue bytes of a row-major
// 32x32 image) and the class names in `batches.meta.txt`.
// CIFAR-100: `cifar-100-binary/` holds `train.bin` and `test.bin` of 3074-byte records (the
// coarse label byte, the fine label byte, then the 3072 pixel bytes) and the class names in
// `fine_label_names.txt` and `coarse_label_names.txt`.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace pw::data {

inline constexpr int kImageSide = 32;
inline constexpr int kChannels = 3;
inline constexpr std::int64_t kImageBytes = kChannels * kImageSide * kImageSide;  // 3072
inline constexpr std::int64_t kRecordBytes = 1 + kImageBytes;                     // 3073
inline constexpr int kNumClasses = 10;

enum class Split { Train, Test };

// Which label of a CIFAR-100 record is the label: the 100 fine classes or the 20 coarse ones.
enum class CifarLabels { Fine, Coarse };

// One release's binary layout and the names that find it.
struct CifarLayout {
  std::string name;     // "cifar10" or "cifar100", the prefix of messages
  std::string title;    // "CIFAR-10", for messages
  std::string archive;  // the official archive's file name
  std::string folder;   // the folder the archive extracts to
  std::vector<std::string> train_files, test_files;
  int label_bytes = 1;  // label bytes before the pixels of each record
  int label_byte = 0;   // the one that is the label
  int num_classes = 10;
  std::string meta_file;                   // the class names, one per line
  std::vector<std::string> default_names;  // when the meta file is missing or unusable
  Normalization normalization;             // per-channel mean and std of the training images
  std::string env_var;                     // the variable naming its folder, e.g. CIFAR10_DIR
  std::string download_script;             // under scripts/, e.g. get-cifar10.sh
  std::int64_t record_bytes() const { return label_bytes + kImageBytes; }
};

// The layouts of the two releases.
const CifarLayout& cifar10_layout();
const CifarLayout& cifar100_layout(CifarLabels labels = CifarLabels::Fine);

// The ten class names of the official release, in label order.
std::vector<std::string> default_class_names();

// The batch file names that make up a CIFAR-10 split, in the order their records are
// concatenated.
std::vector<std::string> split_files(Split split);

using Cifar10 = Splits;

// What `source` holds, resolved to something the reader takes: a folder with the .bin files
// (`source` itself or its layout.folder child) or an archive (`source` if it is a file, or
// `source/<layout.archive>`). Empty when it holds none of these.
std::optional<std::filesystem::path> resolve_cifar_source(const std::filesystem::path& source,
                                                          const CifarLayout& layout);
std::optional<std::filesystem::path> resolve_cifar10_source(const std::filesystem::path& source);

// Reads one split from a folder or an archive; `limit` >= 0 keeps only the first `limit` images.
Dataset read_cifar(const std::filesystem::path& source, const CifarLayout& layout, Split split,
                   std::int64_t limit = -1);
// Reads both splits (one pass over an archive); negative limits read everything.
Cifar10 read_cifar(const std::filesystem::path& source, const CifarLayout& layout,
                   std::int64_t train_limit = -1, std::int64_t test_limit = -1);

// CIFAR-10's readers: read_cifar with cifar10_layout().
Dataset read_cifar10(const std::filesystem::path& source, Split split, std::int64_t limit = -1);
Cifar10 read_cifar10(const std::filesystem::path& source, std::int64_t train_limit = -1,
                     std::int64_t test_limit = -1);

}  // namespace pw::data
