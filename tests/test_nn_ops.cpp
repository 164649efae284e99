// nn ops other than matmul/linear and attention: activations, softmax, losses, layer_norm,
// dropout, conv2d and patches. Expected numbers marked "PyTorch 1.13" were computed once with
// torch.nn.functional in float64 and pasted here; the tests never call Python.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "nn_test_util.h"
#include "ops/activation.h"
#include "ops/broadcast.h"
#include "ops/conv.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/fast_math.h"
#include "ops/layer_norm.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/nn_kernels.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#include "scoped_threads.h"

using namespace pw;
using namespace pw::testing;

namespace {

void check_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-12) {
  const auto v = t.to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i);
    CHECK(v[i] == Approx(expected[i]).margin(tol));
  }
}

Tensor f64(std::initializer_list<double> v, const Shape& s) {
  return tensor(v, s, DType::Float64);
}

}  // namespace

// ---- activations ----

TEST_CASE("gelu and silu match PyTorch values", "[activation]") {
  Tensor x = f64({-2.0, -0.5, 0.0, 1.0, 3.0}, {5});
  // PyTorch 1.13: F.gelu(x), F.gelu(x, approximate='tanh'), F.silu(x).
  check_values(gelu(x), {-0.04550026389635842, -0.15426876936299344, 0.0, 0.841344746068543,
                         2.99595030590511});
  check_values(gelu(x, "tanh"), {-0.04540230591222494, -0.15428599017485606, 0.0,
                                 0.8411919906082768, 2.996362607918227});
  check_values(silu(x), {-0.2384058440442351, -0.1887703343990727, 0.0, 0.7310585786300049,
                         2.8577223804672998});
  CHECK_THROWS_WITH(gelu(x, "fast"), Catch::Contains("[gelu] approximate must be"));
}

TEST_CASE("gelu", "[gradcheck]") {
  SECTION("exact") {
    CHECK(gradcheck([](const auto& in) { return gelu(in[0]); }, {leaf64({3, 4}, 1)}));
  }
  SECTION("tanh") {
    CHECK(gradcheck([](const auto& in) { return gelu(in[0], "tanh"); }, {leaf64({3, 4}, 2)}));
  }
  SECTION("non-contiguous input") {
    CHECK(gradcheck([](const auto& in) { return gelu(transpose(in[0], 0, 1)); },
                    {leaf64({3, 4}, 3)}));
  }
}

TEST_CASE("silu", "[gradcheck]") {
  CHECK(gradcheck([](const auto& in) { return silu(in[0]); }, {leaf64({2, 5}, 4)}));
}

// ---- softmax ----

TEST_CASE("softmax and log_softmax match PyTorch values", "[softmax]") {
  Tensor l = f64({1, 2, 3, 1, 0, -1}, {2, 3});
  // PyTorch 1.13: F.softmax(l, 0) and F.log_softmax(l, 1).
  check_values(softmax(l, 0), {0.5, 0.8807970779778823, 0.9820137900379085, 0.5,
                               0.11920292202211755, 0.017986209962091555});
  check_values(log_softmax(l, -1), {-2.4076059644443806, -1.4076059644443804, -0.4076059644443804,
                                    -0.4076059644443804, -1.4076059644443804, -2.4076059644443806});
  // The row max is subtracted: huge logits do not overflow.
  Tensor big = tensor({1000, 1001}, {2});
  check_values(softmax(big, 0), {0.2689414213699951, 0.7310585786300049}, 1e-6);
}

TEST_CASE("softmax", "[gradcheck]") {
  for (std::int64_t d : {0, 1, 2}) {
    INFO("dim " << d);
    CHECK(gradcheck([d](const auto& in) { return softmax(in[0], d); }, {leaf64({2, 3, 4}, 5)}));
  }
}

TEST_CASE("log_softmax", "[gradcheck]") {
  for (std::int64_t d : {0, 1, -1}) {
    INFO("dim " << d);
    CHECK(gradcheck([d](const auto& in) { return log_softmax(in[0], d); }, {leaf64({2, 3, 4}, 6)}));
  }
}

// ---- losses ----

TEST_CASE("cross_entropy matches PyTorch values", "[loss]") {
  Tensor l = f64({1, 2, 3, 1, 0, -1}, {2, 3});
  Tensor t = f64({2, 0}, {2});
  // PyTorch 1.13: F.cross_entropy(l, [2, 0], reduction=..., label_smoothing=...).
  check_values(cross_entropy(l, t, Reduction::None), {0.4076059644443804, 0.4076059644443804});
  check_values(cross_entropy(l, t), {0.4076059644443804});
  check_values(cross_entropy(l, t, Reduction::Sum), {0.8152119288887608});
  check_values(cross_entropy(l, t, Reduction::Mean, 0.1), {0.5076059644443804});
  check_values(cross_entropy(l, t, Reduction::Sum, 0.1), {1.0152119288887609});
  Tensor soft = f64({0.2, 0.3, 0.5, 0.7, 0.2, 0.1}, {2, 3});
  check_values(cross_entropy_soft(l, soft, Reduction::None),
               {1.1076059644443805, 0.8076059644443804});
  check_values(cross_entropy_soft(l, soft, Reduction::None, 0.1),
               {1.1376059644443806, 0.8676059644443803});
  // nll of log_softmax: the same value by definition.
  check_values(nll_loss(log_softmax(l, 1), t), {0.4076059644443804});
  // mse: ((1-1.5)^2 + 0 + (3-1)^2) / 3 = 4.25 / 3 (by hand).
  check_values(mse_loss(f64({1, 2, 3}, {3}), f64({1.5, 2, 1}, {3})), {4.25 / 3});
}

TEST_CASE("cross_entropy", "[gradcheck]") {
  Tensor t = f64({2, 0, 1}, {3});
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum})
    for (double ls : {0.0, 0.2}) {
      INFO("reduction " << static_cast<int>(r) << " label_smoothing " << ls);
      CHECK(gradcheck([&](const auto& in) { return cross_entropy(in[0], t, r, ls); },
                      {leaf64({3, 4}, 7)}));
      // Soft targets: gradients to both the logits and the target probabilities.
      CHECK(
          gradcheck([&](const auto& in) { return cross_entropy_soft(in[0], in[1], r, ls); },
                    {leaf64({3, 4}, 8), softmax(leaf64({3, 4}, 9), 1).detach().requires_grad_()}));
    }
}

TEST_CASE("nll_loss", "[gradcheck]") {
  Tensor t = f64({1, 3}, {2});
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum})
    CHECK(gradcheck([&](const auto& in) { return nll_loss(in[0], t, r); }, {leaf64({2, 4}, 10)}));
}

TEST_CASE("mse_loss", "[gradcheck]") {
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum})
    CHECK(gradcheck([&](const auto& in) { return mse_loss(in[0], in[1], r); },
                    {leaf64({2, 3}, 11), leaf64({2, 3}, 12)}));
}

TEST_CASE("fused cross_entropy matches log_softmax + nll_loss", "[loss]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dt));
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
    Tensor t = tensor({3, 0, 9, 4, 4, 1, 7, 2}, {8}, dt);
    std::vector<Tensor> in{leaf({8, 10}, 13, dt)};
    for (double ls : {0.0, 0.1}) {
      auto fused = run_with_grads(
          [&](const auto& v) { return cross_entropy(v[0], t, Reduction::Mean, ls); }, in);
      // (1 - eps) nll + eps * mean over rows of -mean_c log p  (PyTorch's label smoothing).
      auto composed = run_with_grads(
          [&](const auto& v) {
            Tensor lp = log_softmax(v[0], 1);
            return add(mul(nll_loss(lp, t), 1 - ls), mul(mean(neg(mean(lp, {1}))), ls));
          },
          in);
      CHECK(compare(fused, composed, tol) == "");
    }
  }
}

TEST_CASE("loss errors name the op, the index and the shapes", "[loss]") {
  Tensor l = ones({2, 5});
  CHECK_THROWS_WITH(cross_entropy(l, tensor({1, 7}, {2})),
                    "[cross_entropy] target 7 at index 1 is out of range for 5 classes");
  CHECK_THROWS_WITH(cross_entropy(l, tensor({-1, 0}, {2})),
                    "[cross_entropy] target -1 at index 0 is out of range for 5 classes");
  CHECK_THROWS_WITH(cross_entropy(l, tensor({0.5, 0}, {2})),
                    Catch::Contains("target 0.5 at index 0 is not an integer"));
  CHECK_THROWS_WITH(cross_entropy(l, tensor({1, 2, 3}, {3})),
                    "[cross_entropy] expected logits (B, C) and target (B), got (2,5) and (3)");
  CHECK_THROWS_WITH(nll_loss(l, tensor({5, 0}, {2})),
                    "[nll_loss] target 5 at index 0 is out of range for 5 classes");
  CHECK_THROWS_WITH(mse_loss(l, ones({5, 2})),
                    "[mse_loss] input (2,5) and target (5,2) differ in shape");
}

// ---- layer_norm ----

TEST_CASE("layer_norm matches PyTorch values", "[layer_norm]") {
  Tensor x = f64({1, 2, 3, 4, 2, 2, 2, 6}, {2, 4});
  Tensor w = f64({1, 2, 0.5, -1}, {4});
  Tensor b = f64({0, 1, 0, -2}, {4});
  // PyTorch 1.13: F.layer_norm(x, (4,), w, b), eps 1e-5.
  check_values(
      layer_norm(x, {4}, w, b),
      {-1.341635419968927, 0.10557638668738178, 0.22360590332815444, -3.341635419968927,
       -0.5773493069415827, -0.15469861388316541, -0.28867465347079135, -3.732047920824748});
  // Without affine: (x - 2.5) / sqrt(1.25 + 1e-5) for the first row (by hand).
  const double r = 1 / std::sqrt(1.25 + 1e-5);
  check_values(slice(layer_norm(x, {4}), 0, 0, 1), {-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r});
  CHECK_THROWS_WITH(layer_norm(x, {3}),
                    "[layer_norm] input (2,4) does not end with normalized_shape (3)");
  CHECK_THROWS_WITH(layer_norm(x, {4}, ones({3}, DType::Float64)),
                    "[layer_norm] weight (3) does not match normalized_shape (4)");
}

TEST_CASE("layer_norm", "[gradcheck]") {
  SECTION("last dim with weight and bias") {
    CHECK(gradcheck([](const auto& in) { return layer_norm(in[0], {4}, in[1], in[2]); },
                    {leaf64({3, 4}, 14), leaf64({4}, 15), leaf64({4}, 16)}));
  }
  SECTION("two trailing dims with weight and bias") {
    CHECK(gradcheck(
        [](const auto& in) {
          return layer_norm(in[0], {2, 3}, in[1], in[2]);
        },
        {leaf64({2, 2, 3}, 17), leaf64({2, 3}, 18), leaf64({2, 3}, 19)}));
  }
  SECTION("without weight and bias") {
    CHECK(gradcheck(
        [](const auto& in) {
          return layer_norm(in[0], {2, 3});
        },
        {leaf64({2, 2, 3}, 20)}));
  }
  SECTION("weight only, non-contiguous input") {
    CHECK(gradcheck([](const auto& in) { return layer_norm(transpose(in[0], 0, 1), {3}, in[1]); },
                    {leaf64({3, 4}, 21), leaf64({3}, 22)}));
  }
}

TEST_CASE("layer_norm matches its composition from reductions, in float32 and float64",
          "[layer_norm]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dt));
    const double tol = dt == DType::Float32 ? 1e-4 : 1e-10;
    std::vector<Tensor> in{leaf({64, 8, 64}, 23, dt), leaf({64}, 24, dt), leaf({64}, 25, dt)};
    auto fused =
        run_with_grads([](const auto& v) { return layer_norm(v[0], {64}, v[1], v[2]); }, in);
    auto composed = run_with_grads(
        [](const auto& v) {
          Tensor mu = mean(v[0], {-1}, true);
          Tensor xc = sub(v[0], mu);
          Tensor var = mean(mul(xc, xc), {-1}, true);
          return add(mul(mul(xc, rsqrt(add(var, 1e-5))), v[1]), v[2]);
        },
        in);
    CHECK(compare(fused, composed, tol) == "");
  }
}

// ---- dropout and drop_path ----

TEST_CASE("dropout keeps about 1-p of the elements, scaled, reproducibly", "[dropout]") {
  Tensor x = ones({64, 64});
  Generator a(1), b(1);
  Tensor ya = dropout(x, 0.3, true, a), yb = dropout(x, 0.3, true, b);
  CHECK(ya.to_vector() == yb.to_vector());
  int zeros_n = 0, wrong = 0;
  for (float v : ya.to_vector()) {
    if (v == 0.0f)
      ++zeros_n;
    else if (std::abs(v - 1 / 0.7) > 1e-6)
      ++wrong;
  }
  CHECK(wrong == 0);
  // 4096 draws: 0.3 +- 0.007 (one standard deviation).
  CHECK(zeros_n / 4096.0 == Approx(0.3).margin(0.03));
  // Evaluation mode and p = 0 are the identity; p = 1 drops everything.
  CHECK(dropout(x, 0.3, false, a).is_same(x));
  CHECK(max_abs(dropout(x, 1.0, true, a)) == 0);
  CHECK_THROWS_WITH(dropout(x, 1.5, true, a), "[dropout] p must be in [0, 1], got 1.5");
}

TEST_CASE("drop_path drops whole samples", "[dropout]") {
  Tensor x = ones({200, 3, 2});
  Generator gen(2);
  Tensor y = dropout(x, 0.0, true, gen);
  y = drop_path(x, 0.25, true, gen);
  int dropped = 0;
  for (std::int64_t b = 0; b < 200; ++b) {
    const auto v = slice(y, 0, b, b + 1).to_vector();
    const bool all_zero = std::all_of(v.begin(), v.end(), [](float e) { return e == 0.0f; });
    const bool all_scaled =
        std::all_of(v.begin(), v.end(), [](float e) { return std::abs(e - 1 / 0.75) < 1e-6; });
    CHECK((all_zero || all_scaled));
    dropped += all_zero;
  }
  // 200 samples: 0.25 +- 0.031.
  CHECK(dropped / 200.0 == Approx(0.25).margin(0.1));
}

TEST_CASE("dropout", "[gradcheck]") {
  auto f = [](const std::vector<Tensor>& in) {
    Generator gen(7);  // re-seeded on each call: every evaluation draws the same mask
    return dropout(in[0], 0.4, true, gen);
  };
  CHECK(gradcheck(f, {leaf64({4, 5}, 30)}));
}

TEST_CASE("drop_path", "[gradcheck]") {
  auto f = [](const std::vector<Tensor>& in) {
    Generator gen(8);
    return drop_path(in[0], 0.5, true, gen);
  };
  CHECK(gradcheck(f, {leaf64({6, 2, 2}, 31)}));
}

// ---- conv2d and patches ----

TEST_CASE("conv2d matches PyTorch values", "[conv]") {
  Tensor x = div(arange(0, 18, 1, DType::Float64), 10.0);
  x = reshape(x, {1, 2, 3, 3});
  Tensor w = reshape(div(sub(arange(0, 16, 1, DType::Float64), 8.0), 10.0), {2, 2, 2, 2});
  Tensor b = tensor({0.5, -1.0}, {2}, DType::Float64);
  // PyTorch 1.13: F.conv2d(x, w, b, stride=1, padding=1) and stride=2, padding=1.
  check_values(conv2d(x, w, b, 1, 1),
               {0.41,  0.17,  0.03,  0.16,  -0.04, -0.98, -1.34, -0.68, -0.52, -2.06, -2.42,
                -1.28, -0.37, -1.55, -1.77, -0.82, -0.37, 0.27,  0.45,  -0.30, 0.38,  1.68,
                1.96,  0.38,  0.86,  2.52,  2.8,   0.74,  -0.19, 0.47,  0.57,  -0.32},
               1e-12);
  check_values(conv2d(x, w, b, 2, 1), {0.41, 0.03, -0.52, -2.42, -0.37, 0.45, 0.86, 2.8}, 1e-12);
  CHECK_THROWS_WITH(conv2d(x, ones({2, 3, 2, 2}, DType::Float64)),
                    "[conv2d] input (1,2,3,3) (B, C, H, W) does not match weight (2,3,2,2) "
                    "(Cout, C, kH, kW)");
}

TEST_CASE("patchify orders patches row-major and each patch as (c, y, x)", "[conv]") {
  Tensor x = reshape(arange(0, 32), {1, 2, 4, 4});  // x[c][y][x] = 16c + 4y + x
  Tensor p = patchify(x, 2);
  REQUIRE(p.shape() == Shape{1, 4, 8});
  // Patch 1 is the top-right 2x2 block: channel 0 then channel 1 (by hand).
  CHECK(slice(p, 1, 1, 2).to_vector() == std::vector<float>{2, 3, 6, 7, 18, 19, 22, 23});
  CHECK(unpatchify(p, 2, 4, 4).to_vector() == x.to_vector());
  CHECK_THROWS_WITH(patchify(ones({1, 3, 6, 8}), 4),
                    "[patchify] image (1,3,6,8) is not divisible into 4x4 patches");
  CHECK_THROWS_WITH(unpatchify(ones({1, 3, 8}), 2, 4, 4),
                    "[unpatchify] patches (1,3,8) do not tile a 4x4 image with 2x2 patches");
}

TEST_CASE("conv2d", "[gradcheck]") {
  auto f = [](std::int64_t s, std::int64_t p) {
    return [s, p](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], s, p); };
  };
  SECTION("stride 1 with padding, multiple channels") {
    CHECK(
        gradcheck(f(1, 1), {leaf64({2, 2, 3, 3}, 32), leaf64({3, 2, 2, 2}, 33), leaf64({3}, 34)}));
  }
  SECTION("stride 2, 3x3 kernel, padding 1") {
    CHECK(
        gradcheck(f(2, 1), {leaf64({1, 2, 4, 4}, 35), leaf64({2, 2, 3, 3}, 36), leaf64({2}, 37)}));
  }
  SECTION("stride = kernel (patch fast path)") {
    CHECK(
        gradcheck(f(2, 0), {leaf64({2, 3, 4, 4}, 38), leaf64({4, 3, 2, 2}, 39), leaf64({4}, 40)}));
  }
  SECTION("no bias, non-contiguous input") {
    auto g = [](const std::vector<Tensor>& in) {
      return conv2d(transpose(in[0], 2, 3), in[1], Tensor(), 1, 0);
    };
    CHECK(gradcheck(g, {leaf64({1, 2, 3, 4}, 41), leaf64({2, 2, 2, 2}, 42)}));
  }
}

TEST_CASE("patchify", "[gradcheck]") {
  CHECK(gradcheck([](const auto& in) { return patchify(in[0], 2); }, {leaf64({1, 2, 4, 4}, 43)}));
  CHECK(gradcheck([](const auto& in) { return unpatchify(in[0], 2, 2, 4); },
                  {leaf64({2, 2, 12}, 44)}));
}

TEST_CASE("conv2d patch fast path = im2col path = patchify + linear", "[conv]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dt));
    const double tol = dt == DType::Float32 ? 1e-4 : 1e-11;
    std::vector<Tensor> in{leaf({3, 3, 8, 8}, 45, dt), leaf({16, 3, 4, 4}, 46, dt),
                           leaf({16}, 47, dt)};
    auto fast = run_with_grads([](const auto& v) { return conv2d(v[0], v[1], v[2], 4); }, in);
    auto general =
        run_with_grads([](const auto& v) { return conv2d_im2col(v[0], v[1], v[2], 4); }, in);
    CHECK(compare(fast, general, tol) == "");
    // Tokens (B, N, D) = patchify(x) W2^T + b, compared through the same (B, D, Hp, Wp) view.
    auto tokens = run_with_grads(
        [](const auto& v) {
          Tensor t = linear(patchify(v[0], 4), reshape(v[1], {16, 48}), v[2]);  // (B, 4, 16)
          return reshape(transpose(t, 1, 2), {3, 16, 2, 2});
        },
        in);
    CHECK(compare(fast, tokens, tol) == "");
  }
  // The output is a channels-last view: flatten(2).transpose(1, 2) to tokens is contiguous.
  Tensor y = conv2d(ones({2, 3, 8, 8}), ones({5, 3, 4, 4}), Tensor(), 4);
  CHECK(transpose(flatten(y, 2), 1, 2).is_contiguous());
}

namespace {
// cat({first, rest}, 1) for (B, 1, D) and (B, N, D), written as two products with 0/1 selection
// matrices: pw::cat is declared in ops/shape.h but not implemented yet (switch to it when it is).
Tensor cat_tokens(const Tensor& first, const Tensor& rest) {
  const std::int64_t N = rest.shape()[1];
  std::vector<double> e0(static_cast<std::size_t>(N + 1), 0.0),
      e1(static_cast<std::size_t>((N + 1) * N), 0.0);
  e0[0] = 1;
  for (std::int64_t i = 0; i < N; ++i) e1[(i + 1) * N + i] = 1;
  return add(matmul(from_vector(e0, {N + 1, 1}), first), matmul(from_vector(e1, {N + 1, N}), rest));
}
}  // namespace

TEST_CASE("the cls-token and position-embedding pattern carries gradients", "[conv]") {
  // tokens (B, N, D); cls (1, 1, D) expanded over the batch and put first; pos (1, N+1, D)
  // broadcast over the batch. d/dcls sums over the batch, d/dpos too.
  auto f = [](const std::vector<Tensor>& in) {
    const Tensor& tokens = in[0];
    Tensor cls = expand(in[1], {2, 1, 3});
    return add(cat_tokens(cls, tokens), in[2]);
  };
  CHECK(gradcheck(f, {leaf64({2, 2, 3}, 48), leaf64({1, 1, 3}, 49), leaf64({1, 3, 3}, 50)}));
  std::vector<Tensor> in{leaf64({2, 2, 3}, 48), leaf64({1, 1, 3}, 49), leaf64({1, 3, 3}, 50)};
  auto r = run_with_grads(f, in);
  // With upstream gradient G: dcls = G[0,0,:] + G[1,0,:], dpos = G[0] + G[1].
  Generator g(99);
  Tensor G = randn({2, 3, 3}, g, DType::Float64);
  CHECK(max_abs_diff(r.grads[1], sum(slice(G, 1, 0, 1), {0}, true)) < 1e-12);
  CHECK(max_abs_diff(r.grads[2], sum(G, {0}, true)) < 1e-12);
}

TEST_CASE("float32 kernels with the vectorised exp/erf/tanh stay close to float64",
          "[activation]") {
  // x on a grid over [-12, 12); float64 runs through libm, float32 through ops/fast_math.h.
  Tensor x64 = arange(-12, 12, 0.01, DType::Float64).requires_grad_();
  Tensor x32 = to(x64.detach(), DType::Float32).requires_grad_();
  auto check = [&](const std::function<Tensor(const Tensor&)>& f, double tol) {
    x64.zero_grad();
    x32.zero_grad();
    Tensor y64 = f(x64), y32 = f(x32);
    sum(y64).backward();
    sum(y32).backward();
    CHECK(max_abs_diff(to(y32, DType::Float64), y64) < tol);
    CHECK(max_abs_diff(to(x32.grad(), DType::Float64), x64.grad()) < tol);
  };
  check([](const Tensor& t) { return gelu(t); }, 2e-6);
  check([](const Tensor& t) { return gelu(t, "tanh"); }, 2e-6);
  check([](const Tensor& t) { return silu(t); }, 2e-6);
  check([](const Tensor& t) { return softmax(reshape(t, {24, 100}), 1); }, 1e-6);
  check([](const Tensor& t) { return log_softmax(reshape(t, {24, 100}), 1); }, 1e-5);
}

TEST_CASE("the vectorised exp, erf and tanh keep NaN and give the limits at the infinities",
          "[activation]") {
  // NaN once went through a float-to-int conversion inside exp (undefined behaviour, caught by
  // UBSan in a run whose loss diverged).
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = INFINITY;
  CHECK(std::isnan(fast::exp(nan)));
  CHECK(std::isnan(fast::erf(nan)));
  CHECK(std::isnan(fast::tanh(nan)));
  CHECK(fast::exp(-inf) == 0.0f);
  CHECK(fast::exp(-100.0f) == 0.0f);
  CHECK(fast::exp(0.0f) == 1.0f);
  CHECK(fast::exp(88.0f) == Approx(std::exp(88.0)).epsilon(1e-6));
  CHECK(fast::erf(inf) == 1.0f);
  CHECK(fast::erf(-inf) == -1.0f);
  CHECK(fast::tanh(inf) == 1.0f);
  CHECK(fast::tanh(-inf) == -1.0f);
}

// ---- fast kernels against their plain reference kernels (ops/nn_kernels.h) ----
// Two threads, sizes past the parallel grain, and lengths that are not multiples of the vector
// width, so that the fast kernels' thread split, vector loops and scalar tails all run.

namespace {

template <typename T>
std::vector<T> normal_values(std::int64_t n, std::uint64_t seed, double scale = 1.0) {
  Generator g(seed);
  std::vector<T> v = randn({n}, g, dtype_of<T>()).template to_vector<T>();
  for (T& x : v) x *= static_cast<T>(scale);
  return v;
}

template <typename T>
double max_abs_diff(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (std::isnan(d)) return INFINITY;  // no NaN is expected on either side
    m = std::max(m, d);
  }
  return m;
}

template <typename T>
void check_gelu_kernels(double tol) {
  // A grid over [-12, 12) (both tails, exactly 0) then normal values, 100003 in all.
  std::vector<T> x = normal_values<T>(100003, 41, 3.0);
  for (int i = 0; i < 2400; ++i) x[i] = static_cast<T>(-12.0 + 0.01 * i);
  const std::vector<T> g = normal_values<T>(x.size(), 42);
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<T> fast(x.size()), ref(x.size());
  kernels::gelu_forward(x.data(), fast.data(), n);
  kernels::gelu_forward_reference(x.data(), ref.data(), n);
  CHECK(max_abs_diff(fast, ref) < tol);
  kernels::gelu_backward(g.data(), x.data(), fast.data(), n);
  kernels::gelu_backward_reference(g.data(), x.data(), ref.data(), n);
  CHECK(max_abs_diff(fast, ref) < tol);
}

template <typename T>
void check_softmax_kernels(double tol) {
  for (std::int64_t D : {1, 7, 16, 65, 300}) {
    for (std::int64_t rows : {1, 3, 2000}) {
      INFO("rows " << rows << " D " << D);
      const std::int64_t n = rows * D;
      std::vector<T> x = normal_values<T>(n, 43, 4.0);
      // Masked entries (-inf) and a large logit: exp gives exactly 0 and never overflows.
      if (D > 1)
        for (std::int64_t i = 0; i < n; i += 5) x[i] = -INFINITY;
      x[n / 2] = static_cast<T>(1000);
      if (D > 1)
        for (std::int64_t r = 0; r < rows; ++r) x[r * D + 1] = static_cast<T>(0.5);  // finite
      const std::vector<T> g = normal_values<T>(n, 44);
      std::vector<T> fast(n), ref(n);
      kernels::softmax_rows_forward(x.data(), fast.data(), rows, D);
      kernels::softmax_rows_forward_reference(x.data(), ref.data(), rows, D);
      CHECK(max_abs_diff(fast, ref) < tol);
      const std::vector<T> y = ref;
      kernels::softmax_rows_backward(g.data(), y.data(), fast.data(), rows, D);
      kernels::softmax_rows_backward_reference(g.data(), y.data(), ref.data(), rows, D);
      CHECK(max_abs_diff(fast, ref) < tol);
    }
  }
}

template <typename T>
void check_layer_norm_kernels(double tol) {
  for (std::int64_t D : {1, 3, 16, 65, 384}) {
    for (std::int64_t R : {1, 7, 700}) {
      for (int affine = 0; affine < 4; ++affine) {
        const bool has_w = affine & 1, has_b = affine & 2;
        INFO("R " << R << " D " << D << " weight " << has_w << " bias " << has_b);
        // An offset mean (5) checks that the variance is centred, not E[x^2] - E[x]^2.
        std::vector<T> x = normal_values<T>(R * D, 45, 2.0);
        for (T& v : x) v += static_cast<T>(5);
        const std::vector<T> w = normal_values<T>(D, 46), b = normal_values<T>(D, 47);
        const std::vector<T> g = normal_values<T>(R * D, 48);
        const T* pw_ = has_w ? w.data() : nullptr;
        std::vector<T> y(R * D), y_ref(R * D), mean(R), mean_ref(R), rstd(R), rstd_ref(R);
        kernels::layer_norm_forward(x.data(), pw_, has_b ? b.data() : nullptr, y.data(),
                                    mean.data(), rstd.data(), R, D, 1e-5);
        kernels::layer_norm_forward_reference(x.data(), pw_, has_b ? b.data() : nullptr,
                                              y_ref.data(), mean_ref.data(), rstd_ref.data(), R, D,
                                              1e-5);
        CHECK(max_abs_diff(y, y_ref) < tol);
        CHECK(max_abs_diff(mean, mean_ref) < tol);
        CHECK(max_abs_diff(rstd, rstd_ref) < tol * 100);  // rstd is 1/sqrt(eps) ~ 316 at D = 1
        // Backward with every subset of {dx, dw, db} requested.
        for (int want = 1; want < 8; ++want) {
          INFO("dx " << (want & 1) << " dw " << ((want >> 1) & 1) << " db " << (want >> 2));
          std::vector<T> dx(R * D), dx_ref(R * D), dw(D), dw_ref(D), db(D), db_ref(D);
          auto grads = [&](std::vector<T>& v, int bit) { return want & bit ? v.data() : nullptr; };
          kernels::layer_norm_backward(g.data(), x.data(), pw_, mean_ref.data(), rstd_ref.data(),
                                       grads(dx, 1), grads(dw, 2), grads(db, 4), R, D);
          kernels::layer_norm_backward_reference(g.data(), x.data(), pw_, mean_ref.data(),
                                                 rstd_ref.data(), grads(dx_ref, 1),
                                                 grads(dw_ref, 2), grads(db_ref, 4), R, D);
          CHECK(max_abs_diff(dx, dx_ref) < tol * 10);  // dx scales with rstd
          // dw and db sum over R rows.
          CHECK(max_abs_diff(dw, dw_ref) < tol * static_cast<double>(R));
          CHECK(max_abs_diff(db, db_ref) < tol * static_cast<double>(R));
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("fast gelu kernels match the reference kernels", "[activation][kernels]") {
  ScopedThreads threads(2);
  SECTION("float32") {
    check_gelu_kernels<float>(2e-6);
  }
  SECTION("float64") {
    check_gelu_kernels<double>(1e-14);
  }
}

TEST_CASE("fast softmax kernels match the reference kernels", "[softmax][kernels]") {
  ScopedThreads threads(2);
  SECTION("float32") {
    check_softmax_kernels<float>(1e-5);
  }
  SECTION("float64") {
    check_softmax_kernels<double>(1e-14);
  }
}

TEST_CASE("fast layer_norm kernels match the reference kernels", "[layer_norm][kernels]") {
  ScopedThreads threads(2);
  SECTION("float32") {
    check_layer_norm_kernels<float>(1e-5);
  }
  SECTION("float64") {
    check_layer_norm_kernels<double>(1e-12);
  }
}

TEST_CASE("conv2d on channels-last input = conv2d on its contiguous copy, dx channels-last",
          "[conv]") {
  // Channels-last maps (what conv2d and max_pool2d return) go through im2col in (y, x, c)
  // order; the contiguous copy through the (c, y, x) path.
  struct Case {
    std::int64_t k, stride, pad;
  };
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : {Case{3, 1, 1}, Case{3, 2, 1}, Case{2, 1, 0}, Case{5, 2, 2}}) {
      INFO(dtype_name(dt) << " k" << c.k << " s" << c.stride << " p" << c.pad);
      const double tol = dt == DType::Float32 ? 1e-4 : 1e-11;
      Generator gen(80 + c.k);
      const Tensor nhwc = randn({2, 7, 6, 5}, gen, dt);  // (B, H, W, C)
      const Tensor cl = permute(nhwc, {0, 3, 1, 2});
      REQUIRE(is_channels_last(cl));
      std::vector<Tensor> w{leaf({4, 5, c.k, c.k}, 81, dt), leaf({4}, 82, dt)};
      auto run = [&](const Tensor& x) {
        std::vector<Tensor> in{x.detach().requires_grad_(), w[0], w[1]};
        return run_with_grads(
            [&](const auto& v) { return conv2d(v[0], v[1], v[2], c.stride, c.pad); }, in);
      };
      CHECK(compare(run(cl), run(copy_contiguous(cl)), tol) == "");
      Tensor y = conv2d(cl.detach().requires_grad_(), w[0], w[1], c.stride, c.pad);
      CHECK(is_channels_last(y.grad_fn()->apply(ones(y.shape(), dt)).at(0)));
    }
}
