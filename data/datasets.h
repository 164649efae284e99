// The data set of a run, chosen by name: CIFAR-10 and CIFAR-100 (located as data/locate.h
// says) or an image folder (data/image_folder.h), read into the two splits a run uses.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "data/dataset.h"

namespace pw::data {

// The names --dataset takes.
const std::vector<std::string>& dataset_names();

struct DatasetOptions {
  std::string dataset = "cifar10";  // one of dataset_names()
  // A CIFAR folder or archive (searched for when empty), or the image folder's root (required).
  std::string data;
  std::string cifar100_labels = "fine";  // "fine" (100 classes) or "coarse" (20)
  std::int64_t limit_train = -1;         // >= 0: keep this many training images
  std::int64_t limit_test = -1;
  bool read_train = true;  // false: the test split only (evaluation)
  // Image folders only (data/image_folder.h).
  double val_split = 0.0;
  std::uint64_t seed = 0;
  std::int64_t memory_budget_bytes = std::int64_t{2048} << 20;
  int threads = 1;
  std::vector<std::string> classes;
  bool compute_normalization = true;
};

// The CIFAR-100 label set named "fine" or "coarse"; anything else is an error naming `flag`.
CifarLabels parse_cifar100_labels(const std::string& name, const std::string& flag);

// Reads the data set; Splits::notes starts with where it came from and how many images each
// split holds.
Splits load_datasets(const DatasetOptions& options);

}  // namespace pw::data
