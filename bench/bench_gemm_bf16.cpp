// The bf16 GEMM engine (ops/gemm_bf16.h) at the ViT-on-CIFAR shapes, batch 128 of 65 tokens
// (R = 8320 rows), each beside OpenBLAS's sgemm on float32 copies of the same operands:
// - linear/D:*/{qkv,fc1,fc2}/{fwd,dX,dW}: a linear layer x (R, in) -> (R, out) with W (out, in):
//   y = x W^T + b, dX = G W and dW = G^T X (G^T read transposed in place), for D in {128, 256,
//   384}, qkv D -> 3D, MLP fc1 D -> 2D and fc2 2D -> D; fc1's fwd_gelu fuses bias and GELU.
// - attention/Dh:*/...: B*H = 512 products of (65 x 65 x Dh) S = q k^T / sqrt(Dh) with q and k
//   read in place from the packed (B, N, 3 H Dh) qkv buffer, and P v with v read in place and the
//   result written straight into the merged (B, N, H Dh); "_dense" reads contiguous
//   (B, H, N, Dh) operands instead, "_per_matrix" makes 512 calls of one product each.
// - overhead/*: one tiny product per call, to show the fixed cost of a call.
// The label names the kernel oneDNN picked; sgemm ignores the epilogue except the bias, which
// it adds as ops/matmul.cpp's linear does (rows start as the bias, beta 1).
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/random.h"
#include "ops/gemm_bf16.h"

// OpenBLAS's cblas.h declares a global `bfloat16` (for its sbgemm): this file says pw::bfloat16.
using namespace pw;
using namespace pw::gemm;

namespace {

constexpr std::int64_t kB = 128, kN = 65, kR = kB * kN, kH = 4;

void set_gflops(benchmark::State& state, const GemmDesc& d) {
  const double flops = 2.0 * static_cast<double>(d.batch0 * d.batch1 * d.M * d.N * d.K);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Elements a (rows, cols) operand's buffer must hold over the batch.
std::int64_t span(const GemmDesc& d, std::int64_t rows, std::int64_t cols, const MatrixStrides& s) {
  return 1 + (d.batch0 - 1) * s.batch0 + (d.batch1 - 1) * s.batch1 + (rows - 1) * s.row +
         (cols - 1) * s.col;
}

std::vector<float> random_floats(std::int64_t n, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(gen.uniform() * 2.0 - 1.0);
  return v;
}

std::vector<pw::bfloat16> random_bf16(std::int64_t n, std::uint64_t seed) {
  const std::vector<float> f = random_floats(n, seed);
  std::vector<pw::bfloat16> v(f.size());
  float_to_bfloat16(f.data(), v.data(), n);
  return v;
}

void run_bf16(benchmark::State& state, GemmDesc d) {
  const auto A = random_bf16(span(d, d.M, d.K, d.a), 1), B = random_bf16(span(d, d.K, d.N, d.b), 2);
  const auto bias = random_floats(d.N, 3);
  const std::int64_t nc = span(d, d.M, d.N, d.c);
  std::vector<float> c_f(d.c_bf16 ? 0 : static_cast<std::size_t>(nc));
  std::vector<pw::bfloat16> c_b(d.c_bf16 ? static_cast<std::size_t>(nc) : 0);
  void* C = d.c_bf16 ? static_cast<void*>(c_b.data()) : c_f.data();
  gemm_bf16(d, A.data(), B.data(), C, bias.data());  // creates and caches the primitive
  for (auto _ : state) {
    gemm_bf16(d, A.data(), B.data(), C, bias.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, d);
  state.SetLabel(gemm_bf16_implementation(d));
}

// How cblas reads a strided (rows, cols) matrix: transpose flag and leading dimension.
struct BlasView {
  CBLAS_TRANSPOSE trans;
  int ld;
};
BlasView blas_view(std::int64_t rows, std::int64_t cols, const MatrixStrides& s) {
  if (cols == 1 || s.col == 1) return {CblasNoTrans, static_cast<int>(rows == 1 ? cols : s.row)};
  return {CblasTrans, static_cast<int>(s.col)};
}

// The same product in float32 through cblas_sgemm: one call, or for a batch an OpenMP loop of
// single-threaded calls as ops/matmul.cpp runs batches of small products.
void run_sgemm(benchmark::State& state, GemmDesc d) {
  const auto A = random_floats(span(d, d.M, d.K, d.a), 1),
             B = random_floats(span(d, d.K, d.N, d.b), 2);
  const auto bias = random_floats(d.N, 3);
  std::vector<float> C(static_cast<std::size_t>(span(d, d.M, d.N, d.c)));
  const BlasView va = blas_view(d.M, d.K, d.a), vb = blas_view(d.K, d.N, d.b);
  const int M = static_cast<int>(d.M), N = static_cast<int>(d.N), K = static_cast<int>(d.K);
  auto one = [&](std::int64_t i0, std::int64_t i1, float beta) {
    cblas_sgemm(CblasRowMajor, va.trans, vb.trans, M, N, K, d.alpha,
                A.data() + i0 * d.a.batch0 + i1 * d.a.batch1, va.ld,
                B.data() + i0 * d.b.batch0 + i1 * d.b.batch1, vb.ld, beta,
                C.data() + i0 * d.c.batch0 + i1 * d.c.batch1, static_cast<int>(d.c.row));
  };
  const std::int64_t nb = d.batch0 * d.batch1;
  for (auto _ : state) {
    if (nb == 1) {
      if (d.has_bias) {
#pragma omp parallel for schedule(static)
        for (std::int64_t m = 0; m < d.M; ++m)
          std::copy(bias.begin(), bias.end(), C.begin() + m * d.c.row);
      }
      one(0, 0, d.has_bias ? 1.0f : 0.0f);
    } else {
#pragma omp parallel for schedule(static)
      for (std::int64_t i = 0; i < nb; ++i) one(i / d.batch1, i % d.batch1, 0.0f);
    }
    benchmark::ClobberMemory();
  }
  set_gflops(state, d);
  state.SetLabel("openblas sgemm");
}

// ---- shapes ----

enum class Pass { kForward, kInputGrad, kWeightGrad };

// One GEMM of a linear layer (in -> out) over R rows: x (R, in), W (out, in), G (R, out).
GemmDesc linear_gemm(std::int64_t in, std::int64_t out, Pass pass) {
  GemmDesc d;
  switch (pass) {
    case Pass::kForward:  // y (R, out) = x W^T + b: W^T is W read with swapped strides
      d.M = kR, d.N = out, d.K = in;
      d.a = {0, 0, in, 1}, d.b = {0, 0, 1, in}, d.c = {0, 0, out, 1};
      d.has_bias = true;
      break;
    case Pass::kInputGrad:  // dX (R, in) = G (R, out) W (out, in)
      d.M = kR, d.N = in, d.K = out;
      d.a = {0, 0, out, 1}, d.b = {0, 0, in, 1}, d.c = {0, 0, in, 1};
      break;
    case Pass::kWeightGrad:  // dW (out, in) = G^T (out, R) X (R, in): K is the whole batch
      d.M = out, d.N = in, d.K = kR;
      d.a = {0, 0, 1, out}, d.b = {0, 0, in, 1}, d.c = {0, 0, in, 1};
      break;
  }
  return d;
}

// S (B, H, N, N) = q k^T / sqrt(Dh), q and k in place in the packed qkv (B, N, 3, H, Dh), or
// from contiguous (B, H, N, Dh) tensors.
GemmDesc attention_scores(std::int64_t Dh, bool packed) {
  const std::int64_t W = 3 * kH * Dh, L = packed ? W : Dh;  // L: distance between tokens
  GemmDesc d{.batch0 = kB,
             .batch1 = kH,
             .M = kN,
             .N = kN,
             .K = Dh,
             .a = {packed ? kN * W : kH * kN * Dh, packed ? Dh : kN * Dh, L, 1},
             .b = {packed ? kN * W : kH * kN * Dh, packed ? Dh : kN * Dh, 1, L},
             .c = {kH * kN * kN, kN * kN, kN, 1}};
  d.alpha = 1.0f / std::sqrt(static_cast<float>(Dh));
  return d;
}

// O = P v for P (B, H, N, N) bf16; v in place in the packed qkv and O written merged into
// (B, N, H Dh), or both contiguous (B, H, N, Dh).
GemmDesc attention_values(std::int64_t Dh, bool packed) {
  const std::int64_t W = 3 * kH * Dh, D = kH * Dh;
  return GemmDesc{
      .batch0 = kB,
      .batch1 = kH,
      .M = kN,
      .N = Dh,
      .K = kN,
      .a = {kH * kN * kN, kN * kN, kN, 1},
      .b = packed ? MatrixStrides{kN * W, Dh, W, 1} : MatrixStrides{kH * kN * Dh, kN * Dh, Dh, 1},
      .c = packed ? MatrixStrides{kN * D, Dh, D, 1} : MatrixStrides{kH * kN * Dh, kN * Dh, Dh, 1}};
}

// The 512 products of attention_scores(Dh, false) as 512 single-product calls.
void run_bf16_per_matrix(benchmark::State& state, std::int64_t Dh) {
  const GemmDesc all = attention_scores(Dh, false);
  GemmDesc one = all;
  one.batch0 = one.batch1 = 1;
  one.a.batch0 = one.a.batch1 = one.b.batch0 = one.b.batch1 = one.c.batch0 = one.c.batch1 = 0;
  const auto A = random_bf16(span(all, all.M, all.K, all.a), 1),
             B = random_bf16(span(all, all.K, all.N, all.b), 2);
  std::vector<float> C(static_cast<std::size_t>(span(all, all.M, all.N, all.c)));
  const std::int64_t nb = kB * kH, step = kN * Dh;
  gemm_bf16(one, A.data(), B.data(), C.data());
  for (auto _ : state) {
    for (std::int64_t i = 0; i < nb; ++i)
      gemm_bf16(one, A.data() + i * step, B.data() + i * step, C.data() + i * kN * kN);
    benchmark::ClobberMemory();
  }
  set_gflops(state, all);
  state.SetLabel(gemm_bf16_implementation(one));
}

GemmDesc tiny(std::int64_t M, std::int64_t N, std::int64_t K) {
  return GemmDesc{.M = M, .N = N, .K = K, .a = {0, 0, K, 1}, .b = {0, 0, 1, K}, .c = {0, 0, N, 1}};
}

const bool kRegistered = [] {
  auto add = [](const std::string& name, auto fn, auto arg, benchmark::TimeUnit unit) {
    benchmark::RegisterBenchmark(name.c_str(), fn, arg)->Unit(unit)->UseRealTime();
  };
  const auto ms = benchmark::kMillisecond;
  struct Layer {
    const char* name;
    std::int64_t in_mult, out_mult;  // in and out as multiples of D
  };
  const Layer layers[] = {{"qkv", 1, 3}, {"fc1", 1, 2}, {"fc2", 2, 1}};
  const std::pair<const char*, Pass> passes[] = {
      {"fwd", Pass::kForward}, {"dX", Pass::kInputGrad}, {"dW", Pass::kWeightGrad}};
  for (std::int64_t D : {128, 256, 384})
    for (const Layer& l : layers)
      for (const auto& [pass_name, pass] : passes) {
        const GemmDesc d = linear_gemm(l.in_mult * D, l.out_mult * D, pass);
        const std::string name = fmt::format("linear/D:{}/{}/{}", D, l.name, pass_name);
        add(name + "/bf16", run_bf16, d, ms);
        add(name + "/sgemm", run_sgemm, d, ms);
        if (std::string_view(l.name) == "fc1" && pass == Pass::kForward) {
          GemmDesc g = d;
          g.gelu = true;
          add(name + "_gelu/bf16", run_bf16, g, ms);
        }
      }
  for (std::int64_t Dh : {32, 64}) {
    const std::string base = fmt::format("attention/Dh:{}/", Dh);
    add(base + "scores/bf16", run_bf16, attention_scores(Dh, true), ms);
    add(base + "scores_dense/bf16", run_bf16, attention_scores(Dh, false), ms);
    add(base + "scores_per_matrix/bf16", run_bf16_per_matrix, Dh, ms);
    add(base + "scores/sgemm", run_sgemm, attention_scores(Dh, true), ms);
    add(base + "values/bf16", run_bf16, attention_values(Dh, true), ms);
    add(base + "values_dense/bf16", run_bf16, attention_values(Dh, false), ms);
    add(base + "values/sgemm", run_sgemm, attention_values(Dh, true), ms);
  }
  const auto us = benchmark::kMicrosecond;
  for (const auto& [name, d] : {std::pair{"overhead/65x65x32", tiny(65, 65, 32)},
                                std::pair{"overhead/1x1x1", tiny(1, 1, 1)}}) {
    add(std::string(name) + "/bf16", run_bf16, d, us);
    add(std::string(name) + "/sgemm", run_sgemm, d, us);
  }
  return true;
}();

}  // namespace
