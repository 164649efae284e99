// The data set of a run, chosen by name: CIFAR-10 and CIFAR-100 (located as data/locate.h
// says) or an image folder (data/image_folder.h), read into the two splits a run uses.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "data/dataset.h"
#include "data/image_folder.h"

namespace pw::data {

// The names --dataset takes.
const std::vector<std::string>& dataset_names();

// The image folder's options (data/image_folder.h) with the choice of data set; the limits and
// read_train serve CIFAR too, the rest only image folders.
struct DatasetOptions : ImageFolderOptions {
  std::string dataset = "cifar10";  // one of dataset_names()
  // A CIFAR folder or archive (searched for when empty), or the image folder's root (required).
  std::string data;
  std::string cifar100_labels = "fine";  // "fine" (100 classes) or "coarse" (20)
};

// The CIFAR-100 label set named "fine" or "coarse"; anything else is an error naming `flag`.
CifarLabels parse_cifar100_labels(const std::string& name, const std::string& flag);

// Reads the data set; Splits::notes starts with where it came from and how many images each
// split holds.
Splits load_datasets(const DatasetOptions& options);

}  // namespace pw::data
