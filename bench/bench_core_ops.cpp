// Core op microbenchmarks at ViT-Tiny shapes on CIFAR-10 (B=128 images, N=65 tokens,
// D=256 width, H=4 heads of Dh=64): broadcast add, reductions over the batch and the last
// dim (forward and backward), elementwise exp/relu, and the head-split permute copy.
// "GB/s" counts the bytes each op must read and write once (float32), per second.
#include <benchmark/benchmark.h>

#include "core/autograd.h"
#include "ops/broadcast.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace {

using namespace pw;

constexpr std::int64_t kB = 128, kN = 65, kD = 256, kH = 4, kDh = 64;
constexpr double kF32 = 4.0;

void set_bandwidth(benchmark::State& state, double bytes_per_iter) {
  state.counters["GB/s"] = benchmark::Counter(
      bytes_per_iter * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

Tensor activations() {
  Generator gen(0);
  return randn({kB, kN, kD}, gen);
}

// (B,N,D) + (D): reads x, writes out.
void BM_BroadcastAddForward(benchmark::State& state) {
  const Tensor x = activations(), bias = randn({kD});
  for (auto _ : state) benchmark::DoNotOptimize(add(x, bias).raw_data());
  set_bandwidth(state, 2 * kF32 * kB * kN * kD);
}
BENCHMARK(BM_BroadcastAddForward)->Unit(benchmark::kMillisecond)->UseRealTime();

// Backward of (B,N,D) + (D): x's gradient is the output gradient (copied into x.grad), the
// bias gradient is sum_to over (B, N). Reads g twice, writes x.grad. Forward is untimed.
void BM_BroadcastAddBackward(benchmark::State& state) {
  Tensor x = activations().requires_grad_(), bias = randn({kD}).requires_grad_();
  const Tensor g = ones({kB, kN, kD});
  for (auto _ : state) {
    state.PauseTiming();
    x.zero_grad();
    bias.zero_grad();
    Tensor y = add(x, bias);
    state.ResumeTiming();
    y.backward(g);
  }
  set_bandwidth(state, 3 * kF32 * kB * kN * kD);
}
BENCHMARK(BM_BroadcastAddBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

// Bias-gradient reduction alone: (B*N, D) summed over the rows.
void BM_SumToBias(benchmark::State& state) {
  const Tensor g = activations();
  for (auto _ : state) benchmark::DoNotOptimize(sum_to(g, {kD}).raw_data());
  set_bandwidth(state, kF32 * kB * kN * kD);
}
BENCHMARK(BM_SumToBias)->Unit(benchmark::kMillisecond)->UseRealTime();

// sum over dim `state.range(0)` of (B,N,D): 0 = the batch dim (a column reduction), 2 = the
// last dim (a row reduction). Reads x once.
void BM_SumForward(benchmark::State& state) {
  const Tensor x = activations();
  const std::int64_t dim = state.range(0);
  for (auto _ : state) benchmark::DoNotOptimize(sum(x, {dim}).raw_data());
  set_bandwidth(state, kF32 * kB * kN * kD);
}
BENCHMARK(BM_SumForward)->Arg(0)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Backward of the same sums: the gradient is expanded back and written into x.grad.
void BM_SumBackward(benchmark::State& state) {
  Tensor x = activations().requires_grad_();
  const std::int64_t dim = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    x.zero_grad();
    Tensor y = sum(x, {dim});
    const Tensor g = ones(y.shape());
    state.ResumeTiming();
    y.backward(g);
  }
  set_bandwidth(state, kF32 * kB * kN * kD);
}
BENCHMARK(BM_SumBackward)->Arg(0)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Exp(benchmark::State& state) {
  const Tensor x = activations();
  for (auto _ : state) benchmark::DoNotOptimize(exp(x).raw_data());
  set_bandwidth(state, 2 * kF32 * kB * kN * kD);
}
BENCHMARK(BM_Exp)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Relu(benchmark::State& state) {
  const Tensor x = activations();
  for (auto _ : state) benchmark::DoNotOptimize(relu(x).raw_data());
  set_bandwidth(state, 2 * kF32 * kB * kN * kD);
}
BENCHMARK(BM_Relu)->Unit(benchmark::kMillisecond)->UseRealTime();

// The attention head split: (B,N,H,Dh) -> (B,H,N,Dh) made contiguous.
void BM_PermuteContiguous(benchmark::State& state) {
  Generator gen(0);
  const Tensor x = randn({kB, kN, kH, kDh}, gen);
  for (auto _ : state) benchmark::DoNotOptimize(contiguous(permute(x, {0, 2, 1, 3})).raw_data());
  set_bandwidth(state, 2 * kF32 * kB * kN * kD);
}
BENCHMARK(BM_PermuteContiguous)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
