#include "data/loader.h"

#include <chrono>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/interrupt.h"
#include "data/autoaugment.h"
#include "data/resize.h"

namespace pw::data {

namespace {

constexpr std::uint64_t kOrderStream = 0x6f72646572ULL;   // keeps the order apart from batches
constexpr std::uint64_t kSampleStream = 0x73616d706cULL;  // and the samples apart from both

}  // namespace

Image augment_image(const Image& img, const AugmentConfig& c, Generator& gen) {
  const int S = c.image_size;
  if (c.augment == AugmentPolicy::None) return eval_transform(img, S, c.crop_pct);
  Image out;
  if (c.random_resized_crop && c.crop) {
    out = random_resized_crop(img, S, c.scale_min, c.scale_max, c.ratio_min, c.ratio_max, gen);
  } else if (c.random_resized_crop) {
    out = eval_transform(img, S, c.crop_pct);
  } else {
    out = img.height == S && img.width == S ? img : resize_bilinear(img, S, S);
    if (c.crop) out = random_crop(out, c.crop_padding, gen);
  }
  if (c.flip) out = random_hflip(out, gen);
  if (c.augment == AugmentPolicy::RandAugment) {
    out = rand_augment(out, c.randaugment_n, c.randaugment_m, gen);
  } else if (c.augment == AugmentPolicy::AutoAugment) {
    out = auto_augment_cifar10(out, gen);
  }
  // Cutout last, on the augmented image, as DeVries & Taylor apply it after normalisation.
  if (c.cutout_size > 0) out = random_cutout(out, c.cutout_size, c.cutout_fill, gen);
  return out;
}

std::vector<std::int64_t> epoch_order(std::int64_t n, bool shuffle, std::uint64_t seed,
                                      std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  Generator gen(hash_seed({seed, static_cast<std::uint64_t>(epoch)}) ^ kOrderStream);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(gen.randint(static_cast<std::uint64_t>(i + 1)));
    std::swap(order[i], order[j]);
  }
  return order;
}

std::uint64_t batch_seed(std::uint64_t seed, std::int64_t epoch, std::int64_t batch) {
  return hash_seed({seed, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(batch)});
}

std::uint64_t sample_seed(std::uint64_t seed, std::int64_t epoch, std::int64_t record) {
  return hash_seed({seed ^ kSampleStream, static_cast<std::uint64_t>(epoch),
                    static_cast<std::uint64_t>(record)});
}

std::pair<std::int64_t, std::int64_t> shard_range(std::int64_t n, int rank, int ranks) {
  PW_CHECK(ranks > 0 && rank >= 0 && rank < ranks && n >= 0,
           "[loader] cannot split {} samples for rank {} of {}", n, rank, ranks);
  const std::int64_t base = n / ranks, extra = n % ranks;
  const std::int64_t begin = rank * base + std::min<std::int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

std::int64_t num_batches(std::int64_t n, std::int64_t batch_size, bool drop_last) {
  PW_CHECK(batch_size > 0, "[loader] batch size must be positive, got {}", batch_size);
  return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
}

Batch make_batch(const Dataset& data, const LoaderConfig& config,
                 const std::vector<std::int64_t>& order, std::int64_t epoch, std::int64_t batch) {
  const std::int64_t n = static_cast<std::int64_t>(order.size());
  const std::int64_t begin = batch * config.batch_size;
  const std::int64_t end = std::min(n, begin + config.batch_size);
  PW_CHECK(begin >= 0 && begin < end, "[loader] batch {} is outside an epoch of {} records", batch,
           n);
  const std::int64_t G = end - begin;
  const auto [lo, hi] = shard_range(G, config.rank, config.ranks);
  const std::int64_t B = hi - lo;
  auto record = [&](std::int64_t position) { return order[begin + position]; };
  // The image at `position` of the global batch, augmented from its own stream, into dst: from
  // memory, or decoded from its file here, on the worker's thread.
  auto make_image = [&](std::int64_t position, float* dst) {
    const std::int64_t r = record(position);
    Generator gen(sample_seed(config.seed, epoch, r));
    normalize_into(augment_image(data.image_at(r), config.augment, gen), dst, config.normalization);
  };

  const int S = config.augment.image_size;
  const std::int64_t image_floats = 3LL * S * S;
  Batch out;
  out.index = batch;
  out.global_size = G;
  out.first = lo;
  out.indices.assign(order.begin() + begin + lo, order.begin() + begin + hi);
  out.labels.resize(static_cast<std::size_t>(B));
  out.images = empty({B, 3, S, S});
  float* dst = out.images.data<float>();
  for (std::int64_t j = 0; j < B; ++j) {
    out.labels[j] = data.labels[out.indices[j]];
    make_image(lo + j, dst + j * image_floats);
  }
  const AugmentConfig& a = config.augment;
  const MixConfig mix{a.mixup_alpha, a.cutmix_alpha, 0.5, a.label_smoothing};
  if (mix.enabled()) {
    Generator gen(batch_seed(config.seed, epoch, batch));
    const MixParams params = sample_mix(mix, S, S, gen);
    // Position p is mixed with G-1-p; a partner of this part is copied, another rank's is made.
    Tensor partners = empty(out.images.shape());
    std::vector<std::int64_t> partner_labels(static_cast<std::size_t>(B));
    float* pdst = partners.data<float>();
    for (std::int64_t j = 0; j < B; ++j) {
      const std::int64_t q = G - 1 - (lo + j);
      partner_labels[j] = data.labels[record(q)];
      if (q >= lo && q < hi)
        std::memcpy(pdst + j * image_floats, dst + (q - lo) * image_floats,
                    image_floats * sizeof(float));
      else
        make_image(q, pdst + j * image_floats);
    }
    out.soft_targets = mix_with(out.images, partners, out.labels, partner_labels,
                                static_cast<int>(data.num_classes()), a.label_smoothing, params);
  }
  return out;
}

Loader::Loader(const Dataset& data, LoaderConfig config) : data_(data), config_(config) {
  PW_CHECK(config_.batch_size > 0, "[loader] batch size must be positive, got {}",
           config_.batch_size);
  PW_CHECK(config_.ranks >= 1 && config_.rank >= 0 && config_.rank < config_.ranks,
           "[loader] rank {} of {} ranks does not exist", config_.rank, config_.ranks);
  PW_CHECK(config_.num_workers >= 0 && config_.prefetch >= 1,
           "[loader] needs num_workers >= 0 and prefetch >= 1, got {} and {}", config_.num_workers,
           config_.prefetch);
  PW_CHECK(config_.augment.image_size > 0, "[loader] image size must be positive, got {}",
           config_.augment.image_size);
  data_.check("loader");
}

Loader::~Loader() {
  stop_workers();
}

std::int64_t Loader::num_batches() const {
  return data::num_batches(data_.size(), config_.batch_size, config_.drop_last);
}

void Loader::stop_workers() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void Loader::start_epoch(std::int64_t epoch, std::int64_t first_batch) {
  stop_workers();
  const std::int64_t total = num_batches();
  PW_CHECK(first_batch >= 0 && first_batch <= total,
           "[loader] cannot start epoch {} at batch {} of {}", epoch, first_batch, total);
  epoch_ = epoch;
  order_ = epoch_order(data_.size(), config_.shuffle, config_.seed, epoch);
  epoch_wait_.clear();
  {
    std::lock_guard lock(mutex_);
    stop_ = false;
    next_claim_ = next_consume_ = first_batch;
    end_ = total;
    ready_.clear();
    errors_.clear();
  }
  for (int w = 0; w < config_.num_workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

void Loader::worker_loop() {
  for (;;) {
    std::int64_t batch;
    {
      std::unique_lock lock(mutex_);
      // Claim only within `prefetch` of the consumer: this bounds the memory held in batches.
      work_cv_.wait(lock, [&] {
        return stop_ || next_claim_ >= end_ || next_claim_ < next_consume_ + config_.prefetch;
      });
      if (stop_ || next_claim_ >= end_) return;
      batch = next_claim_++;
    }
    Batch made;
    std::exception_ptr error;
    try {
      made = make_batch(data_, config_, order_, epoch_, batch);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard lock(mutex_);
      if (error) {
        errors_.emplace(batch, error);
      } else {
        ready_.emplace(batch, std::move(made));
      }
    }
    ready_cv_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Batch batch;
  // A stop request (core/interrupt.h) ends the epoch here, before the next batch, and while
  // waiting for a slow one.
  const auto stop_if_requested = [this] {
    if (!interrupt_pending()) return;
    stop_workers();
    check_interrupt("loader");
  };
  if (config_.num_workers == 0) {
    if (next_consume_ >= end_) return std::nullopt;
    stop_if_requested();
    batch = make_batch(data_, config_, order_, epoch_, next_consume_++);
  } else {
    std::unique_lock lock(mutex_);
    if (next_consume_ >= end_) return std::nullopt;
    const std::int64_t want = next_consume_;
    const auto arrived = [&] { return ready_.count(want) > 0 || errors_.count(want) > 0; };
    // Woken now and then to look at the stop flag.
    for (;;) {
      if (interrupt_pending()) {
        lock.unlock();
        stop_if_requested();  // throws
        lock.lock();
      }
      if (ready_cv_.wait_for(lock, std::chrono::milliseconds(50), arrived)) break;
    }
    if (auto it = errors_.find(want); it != errors_.end()) {
      // The epoch cannot go on past a failed batch: stop here, leave the rest to the caller.
      const std::exception_ptr error = it->second;
      lock.unlock();
      stop_workers();
      std::rethrow_exception(error);
    }
    auto node = ready_.extract(want);
    batch = std::move(node.mapped());
    ++next_consume_;
    lock.unlock();
    work_cv_.notify_all();
  }
  batch.wait_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  total_wait_ += batch.wait_seconds;
  epoch_wait_.push_back(batch.wait_seconds);
  return batch;
}

}  // namespace pw::data
