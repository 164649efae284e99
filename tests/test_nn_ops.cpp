// nn ops other than matmul/linear and attention: activations, softmax, losses, layer_norm,
// dropout, conv2d and patches. Expected numbers marked "PyTorch 1.13" were computed once with
// torch.nn.functional in float64 and pasted here; the tests never call Python.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "nn_test_util.h"
#include "ops/elementwise.h"
#include "ops/nn.h"
#include "ops/reduce.h"
#include "ops/shape.h"

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
