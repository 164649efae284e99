// The autocast (bf16) ops against their float32 selves at the shapes of the `lite` ViT (B 128,
// N 65 tokens, D 256, H 4 heads of Dh 64, MLP 512): linear and the packed attention, forward
// and backward, each with a GFLOP/s counter. Arg 0 runs float32, arg 1 bf16 under autocast.
// Backward is timed by calling the recorded node's apply() directly (no forward, no engine).
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "core/autocast.h"
#include "core/autograd.h"
#include "ops/attention.h"
#include "ops/matmul.h"

using namespace pw;
using namespace pw::bench;

namespace {

constexpr std::int64_t kB = 128, kN = 65, kD = 256, kH = 4, kMlp = 512;

// The MLP's first layer (B, N, D) -> (B, N, 512): the weight is cast once per guard, the input
// on every call, as in a training step.
void BM_autocast_linear_fwd(benchmark::State& state) {
  Tensor x = randn_f({kB, kN, kD}, 1), w = randn_f({kMlp, kD}, 2, true), b = randn_f({kMlp}, 3);
  NoGradGuard no_grad;
  AutocastGuard autocast(state.range(0) == 1);
  for (auto _ : state) benchmark::DoNotOptimize(linear(x, w, b));
  set_gflops(state, 2.0 * kB * kN * kD * kMlp);
}
BENCHMARK(BM_autocast_linear_fwd)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_autocast_linear_bwd(benchmark::State& state) {
  Tensor x = randn_f({kB, kN, kD}, 1, true), w = randn_f({kMlp, kD}, 2, true);
  Tensor b = randn_f({kMlp}, 3, true);
  Tensor y;
  {
    AutocastGuard autocast(state.range(0) == 1);
    y = linear(x, w, b);
  }
  time_backward(state, y, randn_f(y.shape(), 4));
  set_gflops(state, 2 * 2.0 * kB * kN * kD * kMlp);
}
BENCHMARK(BM_autocast_linear_bwd)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Attention on the packed (B, N, 3D) projection: 4 heads of 64, both products and the softmax.
double attention_flops() {
  return 2.0 * 2.0 * kB * kH * kN * kN * (kD / kH);
}

void BM_autocast_attention_fwd(benchmark::State& state) {
  Tensor qkv = randn_f({kB, kN, 3 * kD}, 5);
  NoGradGuard no_grad;
  AutocastGuard autocast(state.range(0) == 1);
  for (auto _ : state) benchmark::DoNotOptimize(scaled_dot_product_attention_packed(qkv, kH));
  set_gflops(state, attention_flops());
}
BENCHMARK(BM_autocast_attention_fwd)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_autocast_attention_bwd(benchmark::State& state) {
  Tensor qkv = randn_f({kB, kN, 3 * kD}, 5, true);
  Tensor y;
  {
    AutocastGuard autocast(state.range(0) == 1);
    y = scaled_dot_product_attention_packed(qkv, kH).output;
  }
  time_backward(state, y, randn_f(y.shape(), 6));
  set_gflops(state, 2 * attention_flops());  // four products, twice the forward's two
}
BENCHMARK(BM_autocast_attention_bwd)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
