// An explicit, seedable random generator (xoshiro256**), so that every random draw in
// patchwork (init, dropout, data order, augmentation) is reproducible from a seed and its
// state can be saved in a checkpoint; and per-sample streams, so that the masks a sample gets
// do not depend on the other samples of its batch (what data parallelism needs, dist/).
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace pw {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) { manual_seed(seed); }
  // Resets the state from a seed (splitmix64 expansion, as the xoshiro authors advise).
  void manual_seed(std::uint64_t seed);
  std::uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Uniform integer in [0, n).
  std::uint64_t randint(std::uint64_t n);
  // Standard normal (Box-Muller; the spare value is cached and is part of the state).
  double normal();

  using State = std::array<std::uint64_t, 6>;  // 4 words of xoshiro, has_spare, spare bits
  State state() const;
  void set_state(const State& s);

 private:
  std::array<std::uint64_t, 4> s_{};
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// The generator used when an op is not given one explicitly.
Generator& default_generator();
// Seeds the default generator.
void manual_seed(std::uint64_t seed);

// A 64-bit hash of a sequence of counters, e.g. (seed, epoch, sample): splitmix64's finaliser
// applied after folding in each word, so that every input bit affects every output bit. The
// seed of a stream derived from counters (a counter-based generator in the manner of Philox:
// the stream is a pure function of its counters, whoever draws it and in whatever order).
std::uint64_t hash_seed(std::initializer_list<std::uint64_t> words);

// Per-sample streams of the random ops that draw a mask over a batch (dropout, drop_path, the
// attention's dropout). While a scope is active on a thread, such an op draws the mask of batch
// row b from a generator of its own, seeded from (key, first_sample + b, the op's call number
// within the scope), instead of from the op's generator. A sample's masks then depend on its
// position in the global batch and on the key (the trainer uses (seed, step)), not on which
// other samples share its process: a batch split over several ranks draws exactly the masks
// of the whole batch on one. Scopes nest; the innermost one applies.
class SampleStreams {
 public:
  // The local batch holds `rows` samples, the first of which is sample `first_sample`.
  SampleStreams(std::uint64_t key, std::int64_t first_sample, std::int64_t rows);
  ~SampleStreams();
  SampleStreams(const SampleStreams&) = delete;
  SampleStreams& operator=(const SampleStreams&) = delete;

  // The innermost active scope of this thread, or nullptr.
  static SampleStreams* active();
  std::int64_t rows() const { return rows_; }
  // Numbers the ops of the scope in call order: each masked op takes the next number.
  std::uint64_t next_op() { return ops_++; }
  // The seed of row `row`'s stream for op number `op`.
  std::uint64_t row_seed(std::uint64_t op, std::int64_t row) const;

 private:
  std::uint64_t key_;
  std::int64_t first_, rows_;
  std::uint64_t ops_ = 0;
  SampleStreams* outer_;
};

// keep[i] (1 = kept) for `rows` x `per_row` elements, each kept with probability 1 - p, at
// 32-bit resolution (two uniforms per 64-bit draw). Outside a SampleStreams scope the draws come
// in sequence from `gen`; inside one each row comes from its own stream (and `rows` must be the
// scope's). `op` names the caller in errors.
std::vector<std::uint8_t> bernoulli_keep(const char* op, std::int64_t rows, std::int64_t per_row,
                                         double p, Generator& gen);

}  // namespace pw
