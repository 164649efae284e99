// An explicit, seedable random generator (xoshiro256**), so that every random draw in
// patchwork (init, dropout, data order, augmentation) is reproducible from a seed and its
// state can be saved in a checkpoint.
#pragma once
#include <array>
#include <cstdint>

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

}  // namespace pw
