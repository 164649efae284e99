#include "core/random.h"

#include <bit>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/parallel.h"

namespace pw {

void Generator::manual_seed(std::uint64_t seed) {
  std::uint64_t x = seed;
  for (auto& w : s_) {
    x += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    w = z ^ (z >> 31);
  }
  has_spare_ = false;
  spare_ = 0.0;
}

std::uint64_t Generator::next_u64() {
  const std::uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = std::rotl(s_[3], 45);
  return result;
}

double Generator::uniform() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

std::uint64_t Generator::randint(std::uint64_t n) {
  // Rejection sampling removes the modulo bias.
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::uint64_t x;
  do {
    x = next_u64();
  } while (x >= limit);
  return x % n;
}

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * std::numbers::pi * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

Generator::State Generator::state() const {
  return {s_[0], s_[1], s_[2], s_[3], has_spare_ ? 1u : 0u, std::bit_cast<std::uint64_t>(spare_)};
}

void Generator::set_state(const State& s) {
  for (int i = 0; i < 4; ++i) s_[i] = s[i];
  has_spare_ = s[4] != 0;
  spare_ = std::bit_cast<double>(s[5]);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(std::uint64_t seed) {
  default_generator().manual_seed(seed);
}

namespace {

std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

thread_local SampleStreams* innermost = nullptr;

// keep[i] = (u_i >= p) for n uniforms drawn in sequence from gen, two per 64-bit draw.
void draw_keep(std::uint8_t* keep, std::int64_t n, std::uint64_t threshold, Generator& gen) {
  for (std::int64_t i = 0; i < n; i += 2) {
    const std::uint64_t r = gen.next_u64();
    keep[i] = (r & 0xffffffffu) >= threshold;
    if (i + 1 < n) keep[i + 1] = (r >> 32) >= threshold;
  }
}

}  // namespace

std::uint64_t hash_seed(std::initializer_list<std::uint64_t> words) {
  std::uint64_t h = 0;
  bool first = true;
  for (std::uint64_t w : words) {
    h = first ? mix64(w) : mix64(h ^ w);
    first = false;
  }
  return h;
}

SampleStreams::SampleStreams(std::uint64_t key, std::int64_t first_sample, std::int64_t rows)
    : key_(key), first_(first_sample), rows_(rows), outer_(innermost) {
  PW_CHECK(first_sample >= 0 && rows >= 0,
           "[SampleStreams] needs first_sample >= 0 and rows >= 0, got {} and {}", first_sample,
           rows);
  innermost = this;
}

SampleStreams::~SampleStreams() {
  innermost = outer_;
}

SampleStreams* SampleStreams::active() {
  return innermost;
}

std::uint64_t SampleStreams::row_seed(std::uint64_t op, std::int64_t row) const {
  return hash_seed({key_, static_cast<std::uint64_t>(first_ + row), op});
}

std::vector<std::uint8_t> bernoulli_keep(const char* op, std::int64_t rows, std::int64_t per_row,
                                         double p, Generator& gen) {
  PW_CHECK(rows >= 0 && per_row >= 0, "[{}] cannot draw a mask of {} x {}", op, rows, per_row);
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(rows * per_row));
  const auto threshold = static_cast<std::uint64_t>(p * 4294967296.0);
  SampleStreams* streams = SampleStreams::active();
  if (!streams) {
    draw_keep(keep.data(), rows * per_row, threshold, gen);
    return keep;
  }
  PW_CHECK(rows == streams->rows(),
           "[{}] draws per-sample masks over {} rows, but the batch of the active SampleStreams "
           "has {} samples (is dim 0 the batch?)",
           op, rows, streams->rows());
  const std::uint64_t number = streams->next_op();
  // Rows are independent streams, so they may be drawn in parallel.
  parallel_for(rows, std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(per_row, 1)),
               [&](std::int64_t r0, std::int64_t r1) {
                 for (std::int64_t r = r0; r < r1; ++r) {
                   Generator row(streams->row_seed(number, r));
                   draw_keep(keep.data() + r * per_row, per_row, threshold, row);
                 }
               });
  return keep;
}

}  // namespace pw
