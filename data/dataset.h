// A labelled set of images, what the loader and the evaluation read: CIFAR records held in
// memory as the files lay them out, or the images of an image folder, decoded into memory when
// they fit in the memory budget and otherwise decoded from their files each time they are read.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image.h"

namespace pw::data {

// How pixels become model inputs: scaled to [0, 1], then (x - mean[c]) / std[c] per channel.
// The defaults are CIFAR-10's training-set values.
struct Normalization {
  std::vector<double> mean{0.4914, 0.4822, 0.4465};
  std::vector<double> std{0.2470, 0.2435, 0.2616};
  bool operator==(const Normalization&) const = default;
};

// Height and width of one image (every image has 3 channels, RGB).
struct ImageSize {
  int height = 0;
  int width = 0;
};

struct Dataset {
  std::vector<std::int64_t> labels;  // N class indices into class_names
  std::vector<std::string> class_names;

  // Pixels held in memory: (3, H, W) uint8 images back to back. With `sizes` empty every image
  // is 3 x height x width (CIFAR's records); otherwise image i is sizes[i] at offsets[i].
  std::vector<std::uint8_t> images;
  int height = 32;
  int width = 32;
  std::vector<ImageSize> sizes;
  std::vector<std::int64_t> offsets;
  // Where each image came from (image folders; empty for CIFAR). With `images` empty the
  // pixels are not in memory: image_at() decodes the file.
  std::vector<std::filesystem::path> files;

  // The mean and std to train with: CIFAR's known values, or computed over a folder's
  // training images.
  Normalization normalization;

  // Number of images.
  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t num_classes() const { return static_cast<std::int64_t>(class_names.size()); }
  // Whether the pixels are in memory (else image_at decodes files).
  bool in_memory() const { return !images.empty() || files.empty(); }
  // Bytes of one image when all have the same size (CIFAR).
  std::int64_t image_bytes() const { return 3LL * height * width; }
  // The CHW bytes of image i of a fixed-size in-memory set (CIFAR).
  const std::uint8_t* image(std::int64_t i) const { return images.data() + i * image_bytes(); }
  // Image i as (3, H, W) uint8, copied from memory or decoded from its file; thread-safe.
  Image image_at(std::int64_t i) const;
  // Throws pw::Error when the fields disagree (sizes, labels out of range); `what` names the set.
  void check(const std::string& what) const;
  // Images [begin, end) as a set of their own, in memory or on disk as this one (a rank's share
  // of an evaluation, dist/).
  Dataset slice(std::int64_t begin, std::int64_t end) const;
};

// The two splits a run uses: training, and test (CIFAR's test files or a folder's val/), with
// what reading them found worth telling (warnings with counts, where the pixels live).
struct Splits {
  Dataset train;
  Dataset test;
  std::vector<std::string> notes;
};

}  // namespace pw::data
