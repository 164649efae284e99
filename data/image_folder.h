// Image folders, torchvision's ImageFolder convention: root/train/<class>/<image> and
// root/val/<class>/<image> (or a seeded --val-split fraction of train), classes sorted by folder
// name, images found recursively by extension (.png .jpg .jpeg .bmp .ppm .pgm, any case).
//
// Every image is checked when the folder is read (its header at least), so that a bad file
// stops the run at the start with its name rather than in the middle of an epoch. Decoded
// images are kept in memory as uint8 (3, H, W) at their own size while the total fits in the
// memory budget; a split over it stays on disk and the loader's worker threads decode its
// images each time they are used.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace pw::data {

// The file extensions read as images (lower case, with the dot).
const std::vector<std::string>& image_extensions();

struct ImageFolderOptions {
  // Decoded pixels (3 bytes a pixel) kept in memory, training split first: a split that does
  // not fit in what is left stays on disk.
  std::int64_t memory_budget_bytes = std::int64_t{2048} << 20;
  int threads = 1;                // decoding threads while reading the folder
  double val_split = 0.0;         // > 0: hold out this fraction of each training class as val
  std::uint64_t seed = 0;         // draws the val split and the limited subsets
  std::int64_t limit_train = -1;  // >= 0: a seeded random subset of this many training images
  std::int64_t limit_test = -1;
  bool read_train = true;  // false: only the val split (evaluation)
  // The class list labels index into (a trained model's); empty: train/'s folders, sorted.
  std::vector<std::string> classes;
  // Computes the training images' per-channel mean and std; for a split kept on disk this
  // decodes every image once more.
  bool compute_normalization = true;
};

// Reads the folder; errors are one line naming the folder or file and the problem (no class
// folders, an empty class, a val class missing from train, a file that cannot be read or
// decoded). Splits::notes tells what was skipped or converted, with counts, and where the pixels
// live. The test split is val/ (or the held-out part of train/).
Splits read_image_folder(const std::filesystem::path& root, const ImageFolderOptions& options);

}  // namespace pw::data
