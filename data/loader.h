// Batches of augmented, normalised images (CIFAR or an image folder), prepared ahead of the
// training loop by worker threads, which also decode the images of a set kept on disk. Every batch
// is a pure function of (seed, epoch, batch index): the shuffle order comes from (seed, epoch),
// each image draws its augmentation from a stream of its own, seeded from (seed, epoch, record),
// and a batch's Mixup/CutMix lambda and box come from (seed, epoch, batch). So the number of
// threads and their timing never change the data, an epoch can resume at any batch, and a loader
// that makes only one rank's share of each batch (LoaderConfig::rank of ranks) makes exactly
// those rows of the one-process batch.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/mix.h"

namespace pw::data {

// none: no per-image augmentation at all (evaluation; crop, flip and cutout are ignored);
// basic: crop and flip as configured; randaugment / autoaugment: basic, then that policy.
enum class AugmentPolicy { None, Basic, RandAugment, AutoAugment };

struct AugmentConfig {
  AugmentPolicy augment = AugmentPolicy::Basic;
  // Every image comes out image_size x image_size. Without augmentation that is timm's
  // evaluation transform (data::eval_transform with crop_pct; 1 keeps a CIFAR image as it is).
  // With it, the crop is CIFAR's (resized to image_size if it is not, then a random crop of the
  // image zero-padded by crop_padding) or, with random_resized_crop, timm's RandomResizedCrop
  // with scale and ratio (for image folders, whose images come in any size).
  int image_size = 32;
  double crop_pct = 1.0;
  bool crop = true;
  int crop_padding = 4;
  bool random_resized_crop = false;
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  bool flip = true;
  int randaugment_n = 2;
  int randaugment_m = 9;  // bin out of 31, torchvision's scale
  int cutout_size = 0;    // 0: off
  CutoutFill cutout_fill = CutoutFill::Mean;
  double mixup_alpha = 0.0;
  double cutmix_alpha = 0.0;
  double label_smoothing = 0.0;  // applied to the soft targets of Mixup/CutMix
};

struct LoaderConfig {
  std::int64_t batch_size = 128;
  bool shuffle = true;
  std::uint64_t seed = 0;
  bool drop_last = false;
  int num_workers = 1;  // 0: batches are made on the consumer's thread
  int prefetch = 3;     // batches prepared ahead (bound of the queue)
  AugmentConfig augment;
  Normalization normalization;  // the model's input normalisation
  // Data parallelism: every batch of batch_size records (the global batch) is split by position
  // over `ranks` ranks (shard_range) and this loader makes rank `rank`'s part of it.
  int rank = 0;
  int ranks = 1;
};

struct Batch {
  std::int64_t index = 0;            // batch index within the epoch
  std::int64_t global_size = 0;      // samples in the whole (global) batch, over all ranks
  std::int64_t first = 0;            // position of this part's first sample in the global batch
  Tensor images;                     // (B, 3, S, S) float32, normalised; S = image_size; B may be 0
  std::vector<std::int64_t> labels;  // (B)
  Tensor soft_targets;               // (B, C) with Mixup/CutMix, else undefined
  std::vector<std::int64_t> indices;  // the dataset records in this batch
  double wait_seconds = 0.0;          // how long next() waited for this batch
};

// The per-image pipeline: crop (to image_size), flip, RandAugment/AutoAugment, Cutout (as
// configured); without augmentation the evaluation transform.
Image augment_image(const Image& img, const AugmentConfig& config, Generator& gen);

// The record order of an epoch: a Fisher-Yates shuffle seeded from (seed, epoch), or 0..n-1.
std::vector<std::int64_t> epoch_order(std::int64_t n, bool shuffle, std::uint64_t seed,
                                      std::int64_t epoch);

// The seed of batch `batch`'s Mixup/CutMix draw in `epoch` (a splitmix64 hash of the three).
std::uint64_t batch_seed(std::uint64_t seed, std::int64_t epoch, std::int64_t batch);

// The seed of the augmentation of dataset record `record` in `epoch`.
std::uint64_t sample_seed(std::uint64_t seed, std::int64_t epoch, std::int64_t record);

// The positions [begin, end) of a global batch of n samples that rank `rank` of `ranks` takes:
// contiguous, in rank order, the first n % ranks ranks taking one more than the others.
std::pair<std::int64_t, std::int64_t> shard_range(std::int64_t n, int rank, int ranks);

// Number of batches per epoch for n records.
std::int64_t num_batches(std::int64_t n, std::int64_t batch_size, bool drop_last);

// Builds batch `batch` of an epoch (this rank's part of it) on the calling thread (what the
// workers run). Under Mixup/CutMix, position p of the global batch is mixed with position
// G-1-p (timm's batch mode); a partner on another rank is augmented again here.
Batch make_batch(const Dataset& data, const LoaderConfig& config,
                 const std::vector<std::int64_t>& order, std::int64_t epoch, std::int64_t batch);

class Loader {
 public:
  // `data` must outlive the loader.
  Loader(const Dataset& data, LoaderConfig config);
  // Stops the workers (they finish the batch in hand) and joins them.
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  std::int64_t num_batches() const;
  // Begins an epoch at batch `first_batch` (for an exact resume) and starts the workers.
  void start_epoch(std::int64_t epoch, std::int64_t first_batch = 0);
  // The next batch of the epoch, or nullopt after the last. Re-throws a worker's exception
  // when the consumer reaches the batch that failed.
  std::optional<Batch> next();

  // Seconds next() spent waiting for batches, over the loader's life and in this epoch.
  double total_wait_seconds() const { return total_wait_; }
  const std::vector<double>& epoch_wait_seconds() const { return epoch_wait_; }

 private:
  void stop_workers();
  void worker_loop();

  const Dataset& data_;
  LoaderConfig config_;
  std::int64_t epoch_ = 0;
  std::vector<std::int64_t> order_;
  double total_wait_ = 0.0;
  std::vector<double> epoch_wait_;

  // Shared with the workers, guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable work_cv_;   // a batch may be claimed, or stop
  std::condition_variable ready_cv_;  // a batch (or an error) is ready
  std::int64_t next_claim_ = 0;       // the next batch a worker will make
  std::int64_t next_consume_ = 0;     // the next batch next() returns
  std::int64_t end_ = 0;              // one past the epoch's last batch
  bool stop_ = false;
  std::map<std::int64_t, Batch> ready_;
  std::map<std::int64_t, std::exception_ptr> errors_;
  std::vector<std::thread> workers_;
};

}  // namespace pw::data
