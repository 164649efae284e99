// Forward and backward of the nn ops at the shapes of the `lite` ViT (B 128, N 65 tokens,
// D 256, H 4 heads of Dh 64, MLP 512, C 10 classes, 4x4 patches of 32x32 images). Backward is
// timed by calling the recorded node's apply() directly, so it excludes the forward and the
// engine. Counters: GFLOP/s for GEMM-bound ops; GB/s (bytes read + written) and its fraction
// of the STREAM copy bandwidth for the memory-bound ones.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cmath>

#include "bench/bench_util.h"
#include "bench/memory_bandwidth.h"
#include "core/autograd.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/layer_norm.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/pool.h"
#include "ops/shape.h"
#include "ops/softmax.h"

using namespace pw;
using namespace pw::bench;

namespace {

constexpr std::int64_t kB = 128, kN = 65, kD = 256, kH = 4, kDh = 64, kMlp = 512, kC = 10;

// ---- reference: raw sgemm ----
void BM_sgemm_1024(benchmark::State& state) {
  const int n = 1024;
  std::vector<float> a(n * n, 1.0f), b(n * n, 0.5f), c(n * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  set_gflops(state, 2.0 * n * n * n);
}
BENCHMARK(BM_sgemm_1024)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- matmul: the qkv projection's GEMM (B*N, D) @ (D, 3D) and its two backward GEMMs ----
void BM_matmul_fwd(benchmark::State& state) {
  Tensor a = randn_f({kB * kN, kD}, 1), b = randn_f({kD, 3 * kD}, 2);
  for (auto _ : state) benchmark::DoNotOptimize(matmul(a, b));
  set_gflops(state, 2.0 * kB * kN * kD * 3 * kD);
}
BENCHMARK(BM_matmul_fwd)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_matmul_bwd(benchmark::State& state) {
  Tensor a = randn_f({kB * kN, kD}, 1, true), b = randn_f({kD, 3 * kD}, 2, true);
  Tensor y = matmul(a, b);
  time_backward(state, y, randn_f(y.shape(), 3));
  set_gflops(state, 2 * 2.0 * kB * kN * kD * 3 * kD);  // dA = G B^T and dB = A^T G
}
BENCHMARK(BM_matmul_bwd)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- linear: the MLP's first layer (B, N, D) -> (B, N, 512) ----
void BM_linear_fwd(benchmark::State& state) {
  Tensor x = randn_f({kB, kN, kD}, 1), w = randn_f({kMlp, kD}, 2), b = randn_f({kMlp}, 3);
  for (auto _ : state) benchmark::DoNotOptimize(linear(x, w, b));
  set_gflops(state, 2.0 * kB * kN * kD * kMlp);
}
BENCHMARK(BM_linear_fwd)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_linear_bwd(benchmark::State& state) {
  Tensor x = randn_f({kB, kN, kD}, 1, true), w = randn_f({kMlp, kD}, 2, true),
         b = randn_f({kMlp}, 3, true);
  Tensor y = linear(x, w, b);
  time_backward(state, y, randn_f(y.shape(), 4));
  set_gflops(state, 2 * 2.0 * kB * kN * kD * kMlp);
}
BENCHMARK(BM_linear_bwd)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- memory-bound ops at the ViT shapes: R = B*N = 8320 token rows of width D ----
// Arguments: D in {128, 256, 384} (the presets' widths) at R rows, and D = 256 at 512 rows,
// whose operands stay in L2 (2 MiB per core here), to separate the kernels' own speed from the
// memory's. Counters:
// GB/s of each input read once and each output written once, and "of_copy", that rate over
// the STREAM copy bandwidth of bench_memory.cpp measured in the same process.
constexpr std::int64_t kRows = kB * kN;

void row_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"D", "rows"});
  for (std::int64_t d : {128, 256, 384}) b->Args({d, kRows});
  b->Args({256, 512})->Unit(benchmark::kMillisecond)->UseRealTime();
}

// Attention probabilities (B*H, N, N) for B = 128 images, and B = 8 (0.5 MiB, in L2).
void attention_shapes(benchmark::internal::Benchmark* b) {
  b->ArgName("B")->Arg(kB)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
}

// ---- softmax over the attention rows (B*H, N, N) ----
void BM_softmax_fwd(benchmark::State& state) {
  Tensor x = randn_f({state.range(0) * kH, kN, kN}, 1);
  for (auto _ : state) benchmark::DoNotOptimize(softmax(x, -1));
  bench::set_memory_counters(state, 2.0 * 4 * x.numel());  // x -> y
}
BENCHMARK(BM_softmax_fwd)->Apply(attention_shapes);

void BM_softmax_bwd(benchmark::State& state) {
  Tensor x = randn_f({state.range(0) * kH, kN, kN}, 1, true);
  Tensor y = softmax(x, -1);
  time_backward(state, y, randn_f(y.shape(), 2));
  bench::set_memory_counters(state, 3.0 * 4 * x.numel());  // g, y -> dx
}
BENCHMARK(BM_softmax_bwd)->Apply(attention_shapes);

// ---- layer_norm over D for R rows, with weight and bias ----
void BM_layer_norm_fwd(benchmark::State& state) {
  const std::int64_t D = state.range(0), R = state.range(1);
  Tensor x = randn_f({R, D}, 1), w = randn_f({D}, 2), b = randn_f({D}, 3);
  for (auto _ : state) benchmark::DoNotOptimize(layer_norm(x, {D}, w, b));
  bench::set_memory_counters(state, 4.0 * (2 * R * D + 2 * D + 2 * R));  // x, w, b -> y, mean, rstd
}
BENCHMARK(BM_layer_norm_fwd)->Apply(row_shapes);

void BM_layer_norm_bwd(benchmark::State& state) {
  const std::int64_t D = state.range(0), R = state.range(1);
  Tensor x = randn_f({R, D}, 1, true), w = randn_f({D}, 2, true), b = randn_f({D}, 3, true);
  Tensor y = layer_norm(x, {D}, w, b);
  time_backward(state, y, randn_f(y.shape(), 4));
  // g, x, w, mean, rstd -> dx, dw, db
  bench::set_memory_counters(state, 4.0 * (3 * R * D + 3 * D + 2 * R));
}
BENCHMARK(BM_layer_norm_bwd)->Apply(row_shapes);

// ---- gelu (exact) on the MLP hidden layer (R, 2D) ----
void BM_gelu_fwd(benchmark::State& state) {
  Tensor x = randn_f({state.range(1), 2 * state.range(0)}, 1);
  for (auto _ : state) benchmark::DoNotOptimize(gelu(x));
  bench::set_memory_counters(state, 2.0 * 4 * x.numel());  // x -> y
}
BENCHMARK(BM_gelu_fwd)->Apply(row_shapes);

void BM_gelu_bwd(benchmark::State& state) {
  Tensor x = randn_f({state.range(1), 2 * state.range(0)}, 1, true);
  Tensor y = gelu(x);
  time_backward(state, y, randn_f(y.shape(), 2));
  bench::set_memory_counters(state, 3.0 * 4 * x.numel());  // g, x -> dx
}
BENCHMARK(BM_gelu_bwd)->Apply(row_shapes);

// ---- the residual add x + f(x) on (R, D), for scale (ops/elementwise.cpp) ----
void BM_residual_add_fwd(benchmark::State& state) {
  const std::int64_t D = state.range(0), R = state.range(1);
  Tensor a = randn_f({R, D}, 1), b = randn_f({R, D}, 2);
  for (auto _ : state) benchmark::DoNotOptimize(add(a, b));
  bench::set_memory_counters(state, 3.0 * 4 * R * D);  // a, b -> out
}
BENCHMARK(BM_residual_add_fwd)->Apply(row_shapes);

// ---- cross_entropy on the classifier logits (B, C) ----
void BM_cross_entropy_fwd(benchmark::State& state) {
  Tensor x = randn_f({kB, kC}, 1);
  std::vector<float> t(kB);
  for (std::int64_t i = 0; i < kB; ++i) t[i] = static_cast<float>(i % kC);
  Tensor target = from_vector(t, {kB});
  for (auto _ : state) benchmark::DoNotOptimize(cross_entropy(x, target, Reduction::Mean, 0.1));
  set_gbps(state, 4.0 * kB * kC);
}
BENCHMARK(BM_cross_entropy_fwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_cross_entropy_bwd(benchmark::State& state) {
  Tensor x = randn_f({kB, kC}, 1, true);
  std::vector<float> t(kB);
  for (std::int64_t i = 0; i < kB; ++i) t[i] = static_cast<float>(i % kC);
  Tensor y = cross_entropy(x, from_vector(t, {kB}), Reduction::Mean, 0.1);
  time_backward(state, y, full({}, 1.0));
  set_gbps(state, 2.0 * 4 * kB * kC);
}
BENCHMARK(BM_cross_entropy_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- conv2d as the patch embedding: (B, 3, 32, 32), 4x4 patches to D ----
void BM_conv2d_patch_fwd(benchmark::State& state) {
  Tensor x = randn_f({kB, 3, 32, 32}, 1), w = randn_f({kD, 3, 4, 4}, 2), b = randn_f({kD}, 3);
  for (auto _ : state) benchmark::DoNotOptimize(conv2d(x, w, b, 4));
  set_gflops(state, 2.0 * kB * 64 * kD * 48);
}
BENCHMARK(BM_conv2d_patch_fwd)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_conv2d_patch_bwd(benchmark::State& state) {
  // As in training: the image needs no gradient, the weight and bias do.
  Tensor x = randn_f({kB, 3, 32, 32}, 1), w = randn_f({kD, 3, 4, 4}, 2, true),
         b = randn_f({kD}, 3, true);
  Tensor y = conv2d(x, w, b, 4);
  time_backward(state, y, randn_f(y.shape(), 4));
  set_gflops(state, 2.0 * kB * 64 * kD * 48);
}
BENCHMARK(BM_conv2d_patch_bwd)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- max_pool2d, 3x3 windows, stride 2, padding 1, at the conv stem's shapes ----
// Arguments: C and H = W of the (128, C, H, H) input, and its layout: 1 channels-last (what
// conv2d returns, so what the stem pools), 0 contiguous. Bytes: forward reads x and writes the
// output and its int32 argmax; backward reads g and the argmax and writes dx (zeroed first, then
// added into: counted once).
void pool_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"C", "H", "channels_last"});
  for (std::int64_t cl : {1, 0}) b->Args({64, 32, cl})->Args({128, 16, cl});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

Tensor pool_input(benchmark::State& state, bool grad) {
  const std::int64_t C = state.range(0), H = state.range(1);
  Tensor x = state.range(2) != 0 ? permute(randn_f({kB, H, H, C}, 1), {0, 3, 1, 2})
                                 : randn_f({kB, C, H, H}, 1);
  if (grad) x.requires_grad_();
  return x;
}

void BM_max_pool2d_fwd(benchmark::State& state) {
  Tensor x = pool_input(state, false);
  Tensor y = max_pool2d(x, 3, 2, 1);
  for (auto _ : state) benchmark::DoNotOptimize(max_pool2d(x, 3, 2, 1));
  bench::set_memory_counters(state, 4.0 * (x.numel() + 2 * y.numel()));
}
BENCHMARK(BM_max_pool2d_fwd)->Apply(pool_shapes);

void BM_max_pool2d_bwd(benchmark::State& state) {
  Tensor x = pool_input(state, true);
  Tensor y = max_pool2d(x, 3, 2, 1);
  // The upstream gradient in the output's layout, as the next op hands it back.
  const Shape& o = y.shape();
  Tensor g = state.range(2) != 0 ? permute(randn_f({o[0], o[2], o[3], o[1]}, 2), {0, 3, 1, 2})
                                 : randn_f(o, 2);
  time_backward(state, y, g);
  bench::set_memory_counters(state, 4.0 * (2 * y.numel() + x.numel()));
}
BENCHMARK(BM_max_pool2d_bwd)->Apply(pool_shapes);

// ---- the conv stem's ReLU and max-pool, in both orders, forward + backward ----
// On the first stem layer's channels-last conv output (128, 64, 32, 32). Arg 0: ReLU then pool
// (CCT's order); arg 1: pool then ReLU (what nn::ConvTokenizer does: the same values, and the
// ReLU sees a quarter of them). The ReLU runs on the (B, H, W, C) memory, as in the stem.
Tensor relu_channels_last(const Tensor& x) {
  return permute(relu(permute(x, {0, 2, 3, 1})), {0, 3, 1, 2});
}

void BM_stem_relu_pool(benchmark::State& state) {
  Tensor x = permute(randn_f({kB, 32, 32, 64}, 1), {0, 3, 1, 2}).requires_grad_();
  const bool pool_first = state.range(0) != 0;
  Tensor g = permute(randn_f({kB, 16, 16, 64}, 2), {0, 3, 1, 2});
  for (auto _ : state) {
    Tensor y = pool_first ? relu_channels_last(max_pool2d(x, 3, 2, 1))
                          : max_pool2d(relu_channels_last(x), 3, 2, 1);
    y.backward(g);
    x.zero_grad();
  }
}
BENCHMARK(BM_stem_relu_pool)
    ->ArgName("pool_first")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- attention at (B, H, N, Dh) = (128, 4, 65, 64) ----
// q, k, v as strided views of one (B, N, 3, H, Dh) projection (arg 1) or contiguous (arg 0).
std::vector<Tensor> attention_inputs(bool from_qkv, bool grad) {
  if (from_qkv) {
    Tensor qkv = randn_f({kB, kN, 3, kH, kDh}, 1, grad);
    Tensor p = permute(qkv, {2, 0, 3, 1, 4});
    return {squeeze(slice(p, 0, 0, 1), 0), squeeze(slice(p, 0, 1, 2), 0),
            squeeze(slice(p, 0, 2, 3), 0)};
  }
  return {randn_f({kB, kH, kN, kDh}, 1, grad), randn_f({kB, kH, kN, kDh}, 2, grad),
          randn_f({kB, kH, kN, kDh}, 3, grad)};
}

void BM_attention_fwd(benchmark::State& state) {
  auto in = attention_inputs(state.range(0) != 0, false);
  for (auto _ : state)
    benchmark::DoNotOptimize(scaled_dot_product_attention(in[0], in[1], in[2]).output);
  set_gflops(state, 2 * 2.0 * kB * kH * kN * kN * kDh);
}
BENCHMARK(BM_attention_fwd)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_attention_bwd(benchmark::State& state) {
  auto in = attention_inputs(state.range(0) != 0, true);
  Tensor y = scaled_dot_product_attention(in[0], in[1], in[2]).output;
  time_backward(state, y, randn_f(y.shape(), 4));
  set_gflops(state, 4 * 2.0 * kB * kH * kN * kN * kDh);
}
BENCHMARK(BM_attention_bwd)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same attention forward composed of matmul + softmax + matmul, for comparison.
void BM_attention_composed_fwd(benchmark::State& state) {
  auto in = attention_inputs(false, false);
  for (auto _ : state) {
    Tensor s = softmax(matmul(in[0], transpose(in[1], -1, -2)), -1);
    benchmark::DoNotOptimize(matmul(s, in[2]));
  }
  set_gflops(state, 2 * 2.0 * kB * kH * kN * kN * kDh);
}
BENCHMARK(BM_attention_composed_fwd)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
