// The bf16 GEMM engine (ops/gemm_bf16.h): the reference against hand-computed products, then
// gemm_bf16 (oneDNN) and gemm_bf16_sgemm (the fallback) against the reference over transposes,
// odd sizes, batch dims with broadcast and in-place views, every epilogue, and the errors.
// Gaps in the operand buffers hold NaN, so a kernel that reads outside A or B fails; gaps in C
// hold a sentinel that must survive.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "core/random.h"
#include "ops/gemm_bf16.h"
#include "scoped_threads.h"

using namespace pw;
using namespace pw::gemm;

namespace {

using Kernel =
    std::function<void(const GemmDesc&, const bfloat16*, const bfloat16*, void*, const float*)>;

constexpr float kSentinel = 12345.0f;

// Offsets of every element of a (rows, cols) operand over the batch, broadcast dims included.
std::vector<std::int64_t> offsets(const GemmDesc& d, std::int64_t rows, std::int64_t cols,
                                  const MatrixStrides& s) {
  std::vector<std::int64_t> r;
  for (std::int64_t i0 = 0; i0 < d.batch0; ++i0)
    for (std::int64_t i1 = 0; i1 < d.batch1; ++i1)
      for (std::int64_t m = 0; m < rows; ++m)
        for (std::int64_t n = 0; n < cols; ++n)
          r.push_back(i0 * s.batch0 + i1 * s.batch1 + m * s.row + n * s.col);
  return r;
}

std::int64_t span(const std::vector<std::int64_t>& offs) {
  std::int64_t m = 0;
  for (std::int64_t o : offs) m = std::max(m, o);
  return m + 1;
}

// A bf16 buffer of NaN with uniform values in [-1, 1) at the operand's elements.
std::vector<bfloat16> operand(const std::vector<std::int64_t>& offs, Generator& gen) {
  std::vector<bfloat16> v(static_cast<std::size_t>(span(offs)),
                          bfloat16(std::numeric_limits<float>::quiet_NaN()));
  for (std::int64_t o : offs)
    v[static_cast<std::size_t>(o)] = bfloat16(static_cast<float>(2.0 * gen.uniform() - 1.0));
  return v;
}

std::string describe(const GemmDesc& d) {
  auto s = [](const MatrixStrides& m) {
    return fmt::format("({},{},{},{})", m.batch0, m.batch1, m.row, m.col);
  };
  return fmt::format(
      "batch ({},{}) M={} N={} K={} A {} B {} C {} alpha={} accumulate={} c_bf16={} bias={} "
      "gelu={}",
      d.batch0, d.batch1, d.M, d.N, d.K, s(d.a), s(d.b), s(d.c), d.alpha, d.accumulate, d.c_bf16,
      d.has_bias, d.gelu);
}

// Runs `kernel` and the reference on the same random problem and checks every element of C
// within float32-accumulation tolerance, and that C's gaps are untouched. The two sum in
// different orders: each may be off by K float32 roundings of the magnitudes it adds
// (alpha sum_k |a b| + |bias| + |C_old|), and a bf16 C by one more bf16 step.
void check_against_reference(const GemmDesc& d, std::uint64_t seed, const Kernel& kernel) {
  INFO(describe(d));
  Generator gen(seed);
  const auto oa = offsets(d, d.M, d.K, d.a), ob = offsets(d, d.K, d.N, d.b),
             oc = offsets(d, d.M, d.N, d.c);
  const std::vector<bfloat16> A = operand(oa, gen), B = operand(ob, gen);
  std::vector<float> bias(static_cast<std::size_t>(d.N));
  for (float& x : bias) x = static_cast<float>(2.0 * gen.uniform() - 1.0);
  // C starts as the sentinel in its gaps and random values (C_old) at its elements.
  const auto c_size = static_cast<std::size_t>(span(oc));
  std::vector<float> c_old(c_size, kSentinel);
  for (std::int64_t o : oc)
    c_old[static_cast<std::size_t>(o)] =
        static_cast<float>(bfloat16(static_cast<float>(2.0 * gen.uniform() - 1.0)));
  std::vector<bfloat16> c_old_b(c_size);
  for (std::size_t i = 0; i < c_size; ++i) c_old_b[i] = bfloat16(c_old[i]);
  std::vector<float> got_f = c_old, want_f = c_old;
  std::vector<bfloat16> got_b = c_old_b, want_b = c_old_b;
  void* got = d.c_bf16 ? static_cast<void*>(got_b.data()) : got_f.data();
  void* want = d.c_bf16 ? static_cast<void*>(want_b.data()) : want_f.data();
  const float* pb = d.has_bias ? bias.data() : nullptr;
  kernel(d, A.data(), B.data(), got, pb);
  gemm_bf16_reference(d, A.data(), B.data(), want, pb);
  auto value = [&](const std::vector<float>& f, const std::vector<bfloat16>& b, std::size_t i) {
    return d.c_bf16 ? static_cast<float>(b[i]) : f[i];
  };
  double worst = 0.0;  // largest |got - want| / tolerance
  std::int64_t worst_at = -1;
  for (std::int64_t i0 = 0; i0 < d.batch0; ++i0)
    for (std::int64_t i1 = 0; i1 < d.batch1; ++i1)
      for (std::int64_t m = 0; m < d.M; ++m)
        for (std::int64_t n = 0; n < d.N; ++n) {
          double magnitude = 0.0;
          for (std::int64_t k = 0; k < d.K; ++k)
            magnitude +=
                std::fabs(static_cast<double>(static_cast<float>(A[static_cast<std::size_t>(
                    i0 * d.a.batch0 + i1 * d.a.batch1 + m * d.a.row + k * d.a.col)]))) *
                std::fabs(static_cast<double>(static_cast<float>(B[static_cast<std::size_t>(
                    i0 * d.b.batch0 + i1 * d.b.batch1 + k * d.b.row + n * d.b.col)])));
          const auto o = static_cast<std::size_t>(i0 * d.c.batch0 + i1 * d.c.batch1 + m * d.c.row +
                                                  n * d.c.col);
          magnitude = std::fabs(d.alpha) * magnitude +
                      (d.has_bias ? std::fabs(bias[static_cast<std::size_t>(n)]) : 0.0) +
                      (d.accumulate ? std::fabs(c_old[o]) : 0.0);
          const double g = value(got_f, got_b, o), w = value(want_f, want_b, o);
          double tol = static_cast<double>(d.K + 8) * std::ldexp(1.0, -23) * magnitude + 1e-30;
          if (d.c_bf16) tol += std::ldexp(1.0, -7) * std::max(std::fabs(g), std::fabs(w));
          const double ratio = std::isfinite(g) ? std::fabs(g - w) / tol : 1e30;
          if (ratio > worst) {
            worst = ratio;
            worst_at = static_cast<std::int64_t>(o);
          }
        }
  INFO("worst element at offset " << worst_at << ", |got - want| / tolerance = " << worst);
  CHECK(worst <= 1.0);
  std::vector<bool> is_c(c_size, false);
  for (std::int64_t o : oc) is_c[static_cast<std::size_t>(o)] = true;
  std::int64_t gaps_changed = 0;
  for (std::size_t i = 0; i < c_size; ++i)
    if (!is_c[i] && (d.c_bf16 ? got_b[i].bits != c_old_b[i].bits : got_f[i] != c_old[i]))
      ++gaps_changed;
  CHECK(gaps_changed == 0);
}

void check_engine(const GemmDesc& d, std::uint64_t seed) {
  check_against_reference(d, seed, gemm_bf16);
}

// A 2-D product with A and/or B transposed (stored as the transpose, row stride 1) and each
// leading dimension padded by `pad`.
GemmDesc plain(std::int64_t M, std::int64_t N, std::int64_t K, bool ta, bool tb,
               std::int64_t pad = 0) {
  GemmDesc d;
  d.M = M;
  d.N = N;
  d.K = K;
  d.a = ta ? MatrixStrides{0, 0, 1, M + pad} : MatrixStrides{0, 0, K + pad, 1};
  d.b = tb ? MatrixStrides{0, 0, 1, K + pad} : MatrixStrides{0, 0, N + pad, 1};
  d.c = MatrixStrides{0, 0, N + pad, 1};
  return d;
}

}  // namespace

TEST_CASE("gemm_bf16_reference computes the hand-computed product and epilogue", "[bf16]") {
  // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[58,64],[139,154]] (by hand).
  const std::vector<bfloat16> A{bfloat16(1), bfloat16(2), bfloat16(3),
                                bfloat16(4), bfloat16(5), bfloat16(6)};
  const std::vector<bfloat16> B{bfloat16(7),  bfloat16(8),  bfloat16(9),
                                bfloat16(10), bfloat16(11), bfloat16(12)};
  GemmDesc d{.M = 2, .N = 2, .K = 3, .a = {0, 0, 3, 1}, .b = {0, 0, 2, 1}, .c = {0, 0, 2, 1}};
  std::vector<float> C(4, -1.0f);
  gemm_bf16_reference(d, A.data(), B.data(), C.data());
  CHECK(C == std::vector<float>{58, 64, 139, 154});

  // The same product from A stored transposed ([[1,4],[2,5],[3,6]], strides row 1, col 2).
  const std::vector<bfloat16> At{bfloat16(1), bfloat16(4), bfloat16(2),
                                 bfloat16(5), bfloat16(3), bfloat16(6)};
  GemmDesc dt = d;
  dt.a = {0, 0, 1, 2};
  gemm_bf16_reference(dt, At.data(), B.data(), C.data());
  CHECK(C == std::vector<float>{58, 64, 139, 154});

  // alpha 0.5, bias (1, -1), accumulate onto ones: 0.5 * [[58,64],[139,154]] + bias + 1.
  GemmDesc e = d;
  e.alpha = 0.5f;
  e.has_bias = true;
  e.accumulate = true;
  const std::vector<float> bias{1.0f, -1.0f};
  std::fill(C.begin(), C.end(), 1.0f);
  gemm_bf16_reference(e, A.data(), B.data(), C.data(), bias.data());
  CHECK(C == std::vector<float>{31, 32, 71.5f, 77});

  // GELU (erf form) of 1 and -1: 0.8413447460685429 and -0.15865525393145707.
  GemmDesc g{.M = 1, .N = 2, .K = 1, .a = {0, 0, 1, 1}, .b = {0, 0, 2, 1}, .c = {0, 0, 2, 1}};
  g.gelu = true;
  const std::vector<bfloat16> one{bfloat16(1)}, pm{bfloat16(1), bfloat16(-1)};
  std::vector<float> c2(2);
  gemm_bf16_reference(g, one.data(), pm.data(), c2.data());
  CHECK(c2[0] == Approx(0.8413447460685429).epsilon(1e-6));
  CHECK(c2[1] == Approx(-0.15865525393145707).epsilon(1e-6));

  // bf16 C: 256 + 1 = 257 lies halfway between bf16 256 and 258 and rounds to even (256);
  // 256 + 3 = 259 rounds up to 260.
  GemmDesc h{.M = 1, .N = 2, .K = 2, .a = {0, 0, 2, 1}, .b = {0, 0, 2, 1}, .c = {0, 0, 2, 1}};
  h.c_bf16 = true;
  const std::vector<bfloat16> ones{bfloat16(1), bfloat16(1)};
  const std::vector<bfloat16> bb{bfloat16(256), bfloat16(256), bfloat16(1), bfloat16(3)};
  std::vector<bfloat16> cb(2);
  gemm_bf16_reference(h, ones.data(), bb.data(), cb.data());
  CHECK(static_cast<float>(cb[0]) == 256.0f);
  CHECK(static_cast<float>(cb[1]) == 260.0f);
}

TEST_CASE("gemm_bf16 matches the reference for every transpose of A and B at odd sizes", "[bf16]") {
  const std::vector<std::array<std::int64_t, 3>> sizes{
      {1, 1, 1}, {7, 33, 130}, {65, 65, 32}, {130, 7, 65}, {33, 130, 7}, {1, 65, 33}, {65, 1, 7}};
  std::uint64_t seed = 1;
  for (const auto& [M, N, K] : sizes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) check_engine(plain(M, N, K, ta, tb), seed++);
}

TEST_CASE("gemm_bf16 reads padded leading dimensions and writes a padded or transposed C",
          "[bf16]") {
  std::uint64_t seed = 100;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) check_engine(plain(33, 65, 130, ta, tb, 5), seed++);
  // C stored transposed: (M, N) with row stride 1 and column stride M (+ padding).
  for (std::int64_t pad : {0, 3}) {
    GemmDesc d = plain(65, 33, 32, false, true);
    d.c = {0, 0, 1, 65 + pad};
    check_engine(d, seed++);
    d.accumulate = true;
    d.has_bias = true;
    check_engine(d, seed++);
  }
}

TEST_CASE("gemm_bf16 batches over two dims, with broadcast operands and in-place views", "[bf16]") {
  std::uint64_t seed = 200;
  const std::int64_t b0 = 3, b1 = 4, M = 7, N = 33, K = 65;
  const GemmDesc d{.batch0 = b0,
                   .batch1 = b1,
                   .M = M,
                   .N = N,
                   .K = K,
                   .a = {b1 * M * K, M * K, K, 1},
                   .b = {b1 * K * N, K * N, N, 1},
                   .c = {b1 * M * N, M * N, N, 1}};
  check_engine(d, seed++);
  SECTION("B shared over batch0, over batch1, over both") {
    for (const MatrixStrides& b : {MatrixStrides{0, K * N, N, 1}, MatrixStrides{K * N, 0, N, 1},
                                   MatrixStrides{0, 0, N, 1}, MatrixStrides{0, 0, 1, K}}) {
      GemmDesc e = d;
      e.b = b;
      check_engine(e, seed++);
    }
  }
  SECTION("A shared over batch0, over batch1, over both") {
    for (const MatrixStrides& a : {MatrixStrides{0, M * K, K, 1}, MatrixStrides{M * K, 0, K, 1},
                                   MatrixStrides{0, 0, K, 1}, MatrixStrides{0, 0, 1, M}}) {
      GemmDesc e = d;
      e.a = a;
      check_engine(e, seed++);
    }
  }
  SECTION("batch dims in the other order in memory (batch1 outermost)") {
    GemmDesc e = d;
    e.a = {M * K, b0 * M * K, K, 1};
    e.c = {M * N, b0 * M * N, N, 1};
    check_engine(e, seed++);
  }
  SECTION("attention: q, k and v read in place from a packed (B, N, 3 H Dh) buffer") {
    // Tokens T, heads H of width Dh; q at column h Dh, k at D + h Dh, v at 2 D + h Dh.
    const std::int64_t B = 2, H = 3, T = 9, Dh = 8, D = H * Dh, W = 3 * D;
    GemmDesc s{.batch0 = B,
               .batch1 = H,
               .M = T,
               .N = T,
               .K = Dh,
               .a = {T * W, Dh, W, 1},  // q (T, Dh) of image b, head h
               .b = {T * W, Dh, 1, W},  // k^T (Dh, T): k's rows read as columns
               .c = {H * T * T, T * T, T, 1}};
    s.alpha = 1.0f / std::sqrt(static_cast<float>(Dh));
    check_engine(s, seed++);
    s.c_bf16 = true;
    check_engine(s, seed++);
    // P v: P (B, H, T, T) by v (T, Dh) in place, written straight into the merged (B, T, D).
    const GemmDesc pv{.batch0 = B,
                      .batch1 = H,
                      .M = T,
                      .N = Dh,
                      .K = T,
                      .a = {H * T * T, T * T, T, 1},
                      .b = {T * W, Dh, W, 1},
                      .c = {T * D, Dh, D, 1}};
    check_engine(pv, seed++);
  }
}

TEST_CASE("gemm_bf16 applies alpha, bias, accumulate, GELU and a bf16 C in every combination",
          "[bf16]") {
  std::uint64_t seed = 300;
  for (int bits = 0; bits < 32; ++bits) {
    GemmDesc d = plain(33, 65, 130, false, true);
    d.alpha = (bits & 1) ? -0.375f : 1.0f;
    d.has_bias = (bits & 2) != 0;
    d.accumulate = (bits & 4) != 0;
    d.gelu = (bits & 8) != 0;
    d.c_bf16 = (bits & 16) != 0;
    check_engine(d, seed++);
  }
  // Batched, with an epilogue: the bias is per column of every matrix.
  GemmDesc b{.batch0 = 2,
             .batch1 = 3,
             .M = 7,
             .N = 33,
             .K = 65,
             .a = {3 * 7 * 65, 7 * 65, 65, 1},
             .b = {0, 65 * 33, 33, 1},
             .c = {3 * 7 * 33, 7 * 33, 33, 1}};
  b.alpha = 2.0f;
  b.has_bias = true;
  b.gelu = true;
  check_engine(b, seed++);
}

TEST_CASE("gemm_bf16 caches per thread count and runs on two threads", "[bf16]") {
  // 130^3 multiply-adds: enough work for gemm_bf16 to use more than one thread.
  GemmDesc d = plain(130, 130, 130, true, false);
  d.has_bias = true;
  check_engine(d, 400);
  testing::ScopedThreads two(2);
  check_engine(d, 401);
}

TEST_CASE("gemm_bf16_sgemm, the fallback without oneDNN, matches the reference", "[bf16]") {
  std::uint64_t seed = 500;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      GemmDesc d = plain(33, 7, 65, ta, tb, 3);
      check_against_reference(d, seed++, gemm_bf16_sgemm);
      d.alpha = 0.5f;
      d.has_bias = true;
      d.accumulate = true;
      d.gelu = true;
      d.c_bf16 = ta;
      check_against_reference(d, seed++, gemm_bf16_sgemm);
    }
  const std::int64_t B = 2, H = 3, T = 9, Dh = 8, W = 3 * H * Dh;
  const GemmDesc s{.batch0 = B,
                   .batch1 = H,
                   .M = T,
                   .N = T,
                   .K = Dh,
                   .a = {T * W, Dh, W, 1},
                   .b = {0, Dh, 1, W},              // shared over batch0
                   .c = {H * T * T, T * T, 1, T}};  // C stored transposed
  check_against_reference(s, seed++, gemm_bf16_sgemm);
  check_against_reference(s, seed++, gemm_bf16);
}

TEST_CASE("gemm_bf16 names the implementation and the CPU's bf16 support", "[bf16]") {
  CHECK_FALSE(onednn_cpu_isa().empty());
  CHECK_FALSE(gemm_bf16_implementation().empty());
  const std::string dense = gemm_bf16_implementation(plain(130, 65, 33, false, true));
  INFO("ISA " << onednn_cpu_isa() << ", dense product on " << dense);
  // Native bf16 units mean oneDNN's brgemm kernels for a dense product.
  if (cpu_has_native_bf16()) CHECK(dense.rfind("brg", 0) == 0);
  // The engine packs an operand that has gaps when that reaches a faster kernel.
  const std::string padded = gemm_bf16_implementation(plain(130, 65, 33, false, true, 3));
  if (dense.rfind("brg", 0) == 0) CHECK(padded.rfind("brg", 0) == 0);
}

TEST_CASE("gemm_bf16 rejects invalid descriptors with [gemm_bf16] errors", "[bf16]") {
  const std::vector<bfloat16> A(64, bfloat16(1)), B(64, bfloat16(1));
  std::vector<float> C(64);
  auto run = [&](const GemmDesc& d, const float* bias = nullptr) {
    gemm_bf16(d, A.data(), B.data(), C.data(), bias);
  };
  GemmDesc d = plain(4, 4, 4, false, false);
  GemmDesc zero = d;
  zero.K = 0;
  CHECK_THROWS_WITH(run(zero), Catch::StartsWith("[gemm_bf16] sizes must be positive") &&
                                   Catch::Contains("M=4 N=4 K=0"));
  GemmDesc no_unit = d;
  no_unit.a = {0, 0, 8, 2};
  CHECK_THROWS_WITH(run(no_unit), Catch::StartsWith("[gemm_bf16] A (4x4) needs a unit stride"));
  GemmDesc overlapping_rows = d;
  overlapping_rows.b = {0, 0, 2, 1};
  CHECK_THROWS_WITH(run(overlapping_rows),
                    Catch::StartsWith("[gemm_bf16] B (4x4) needs a unit stride"));
  GemmDesc negative = d;
  negative.c = {0, 0, -4, 1};
  CHECK_THROWS_WITH(run(negative), Catch::StartsWith("[gemm_bf16] C has a negative stride"));
  GemmDesc shared_c = d;
  shared_c.batch0 = 2;
  shared_c.c = {0, 0, 4, 1};
  CHECK_THROWS_WITH(run(shared_c), Catch::StartsWith("[gemm_bf16] C's matrices overlap"));
  GemmDesc no_bias = d;
  no_bias.has_bias = true;
  CHECK_THROWS_WITH(run(no_bias),
                    Catch::StartsWith("[gemm_bf16] has_bias is set but bias is null"));
  CHECK_THROWS_WITH(gemm_bf16_reference(zero, A.data(), B.data(), C.data()),
                    Catch::StartsWith("[gemm_bf16] sizes must be positive"));
}
