// Helpers shared by the op benchmarks: counters, random inputs, timing a backward rule.
#pragma once
#include <benchmark/benchmark.h>

#include "core/autograd.h"
#include "core/tensor.h"

namespace pw::bench {

// "GFLOP/s": `flops` per iteration as a rate.
inline void set_gflops(benchmark::State& state, double flops) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
// "GB/s": `bytes` (read + written) per iteration as a rate.
inline void set_gbps(benchmark::State& state, double bytes) {
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// A float32 standard-normal tensor, optionally a leaf that requires grad.
inline Tensor randn_f(const Shape& s, std::uint64_t seed, bool grad = false) {
  Generator g(seed);
  Tensor t = randn(s, g);
  if (grad) t.requires_grad_();
  return t;
}

// Runs the backward rule of y's node with upstream gradient g, repeatedly (no forward, no
// engine).
inline void time_backward(benchmark::State& state, const Tensor& y, const Tensor& g) {
  NoGradGuard no_grad;
  for (auto _ : state) {
    auto grads = y.grad_fn()->apply(g);
    benchmark::DoNotOptimize(grads.data());
  }
}

}  // namespace pw::bench
