// scaled_dot_product_attention: values from PyTorch, finite-difference gradients (masks,
// heads, strided q/k/v, dropout), and the fused kernels against the matmul + softmax + matmul
// composition they replace, forward and backward, in float32 and float64.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "nn_test_util.h"
#include "ops/attention.h"
#include "ops/broadcast.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"

using namespace pw;
using namespace pw::testing;

namespace {

// softmax(q k^T * scale + mask) v from the unfused ops.
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& mask = Tensor()) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.shape()[3]));
  Tensor s = mul(matmul(q, transpose(k, -1, -2)), scale);
  if (mask.defined()) s = add(s, mask);
  return matmul(softmax(s, -1), v);
}

// q, k, v as the strided views of one (B, N, 3, H, Dh) projection, permuted to (B, H, N, Dh).
std::vector<Tensor> split_qkv(const Tensor& qkv) {
  Tensor p = permute(qkv, {2, 0, 3, 1, 4});  // (3, B, H, N, Dh)
  std::vector<Tensor> out;
  for (std::int64_t i = 0; i < 3; ++i) out.push_back(squeeze(slice(p, 0, i, i + 1), 0));
  return out;
}

}  // namespace

TEST_CASE("attention output matches PyTorch values", "[attention]") {
  Tensor q = tensor({0.1, 0.2, 0.3, -0.4, 1.0, 0.5}, {1, 1, 3, 2}, DType::Float64);
  Tensor k = tensor({0.5, -0.1, 0.2, 0.2, -0.3, 0.8}, {1, 1, 3, 2}, DType::Float64);
  Tensor v = tensor({1, 2, 3, 4, 5, 6}, {1, 1, 3, 2}, DType::Float64);
  Tensor m = tensor({0, -1, 0, 0, 0, -2, 0.5, 0, 0}, {3, 3}, DType::Float64);
  // PyTorch 1.13 (which has no F.scaled_dot_product_attention): the documented math
  // torch.softmax(q @ k.transpose(-1, -2) / sqrt(2) [+ m], -1) @ v in float64.
  const std::vector<double> plain{3.04735219086212,   4.047352190862119,  2.7251879902188145,
                                  3.7251879902188145, 2.8363957709785317, 3.8363957709785317};
  const std::vector<double> masked{3.0598362943172,    4.0598362943172,   2.0654360675624495,
                                   3.0654360675624495, 2.478521367855747, 3.478521367855747};
  auto close = [](const Tensor& t, const std::vector<double>& e) {
    const auto got = t.to_vector<double>();
    for (std::size_t i = 0; i < e.size(); ++i)
      if (std::abs(got[i] - e[i]) > 1e-12) return false;
    return true;
  };
  CHECK(close(scaled_dot_product_attention(q, k, v).output, plain));
  CHECK(close(scaled_dot_product_attention(q, k, v, m).output, masked));
  // A boolean mask that keeps everything changes nothing; masking key 2 for every query equals
  // an additive -inf there.
  CHECK(close(scaled_dot_product_attention(q, k, v, ones({3, 3}, DType::Float64), true).output,
              plain));
  Tensor keep01 = tensor({1, 1, 0}, {1, 3}, DType::Float64);
  Tensor minus_inf = tensor({0, 0, -INFINITY}, {1, 3}, DType::Float64);
  CHECK(max_abs_diff(scaled_dot_product_attention(q, k, v, keep01, true).output,
                     composed_attention(q, k, v, minus_inf)) < 1e-12);
}

TEST_CASE("attention probabilities and output layout", "[attention]") {
  Generator g(3);
  Tensor q = randn({2, 3, 5, 4}, g), k = randn({2, 3, 6, 4}, g), v = randn({2, 3, 6, 3}, g);
  auto r = scaled_dot_product_attention(q, k, v, Tensor(), false, 0.0, {}, true);
  REQUIRE(r.probs.shape() == Shape{2, 3, 5, 6});
  CHECK(max_abs_diff(r.probs, softmax(mul(matmul(q, transpose(k, -1, -2)), 0.5), -1)) < 1e-6);
  CHECK(max_abs_diff(sum(r.probs, {-1}), ones({2, 3, 5})) < 1e-6);
  CHECK(r.output.shape() == Shape{2, 3, 5, 3});
  // Stored as (B, N, H, Dv): merging the heads back is a view.
  CHECK(transpose(r.output, 1, 2).is_contiguous());
  CHECK_FALSE(scaled_dot_product_attention(q, k, v).probs.defined());
}

TEST_CASE("scaled_dot_product_attention", "[gradcheck]") {
  auto attn = [](const std::vector<Tensor>& in) {
    return scaled_dot_product_attention(in[0], in[1], in[2]).output;
  };
  SECTION("several heads, no mask") {
    CHECK(gradcheck(attn,
                    {leaf64({1, 2, 3, 2}, 1), leaf64({1, 2, 3, 2}, 2), leaf64({1, 2, 3, 2}, 3)}));
  }
  SECTION("different query and key lengths, custom scale") {
    auto f = [](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), false, 0.0, 0.7).output;
    };
    CHECK(
        gradcheck(f, {leaf64({2, 1, 2, 3}, 4), leaf64({2, 1, 4, 3}, 5), leaf64({2, 1, 4, 2}, 6)}));
  }
  SECTION("additive mask broadcast over batch and heads") {
    Tensor m = leaf64({3, 3}, 7).detach();
    auto f = [m](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1], in[2], m).output;
    };
    CHECK(
        gradcheck(f, {leaf64({1, 2, 3, 2}, 8), leaf64({1, 2, 3, 2}, 9), leaf64({1, 2, 3, 2}, 10)}));
  }
  SECTION("boolean causal mask") {
    Tensor m = tensor({1, 0, 0, 1, 1, 0, 1, 1, 1}, {1, 1, 3, 3}, DType::Float64);
    auto f = [m](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1], in[2], m, true).output;
    };
    CHECK(gradcheck(
        f, {leaf64({1, 2, 3, 2}, 11), leaf64({1, 2, 3, 2}, 12), leaf64({1, 2, 3, 2}, 13)}));
  }
  SECTION("non-contiguous q/k/v from one qkv projection") {
    auto f = [](const std::vector<Tensor>& in) {
      auto qkv = split_qkv(in[0]);
      return scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).output;
    };
    CHECK(gradcheck(f, {leaf64({1, 3, 3, 2, 2}, 14)}));  // (B, N, 3, H, Dh)
  }
  SECTION("dropout under a fixed generator") {
    auto f = [](const std::vector<Tensor>& in) {
      Generator gen(42);  // re-seeded on each call: every evaluation draws the same mask
      return scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), false, 0.4, {}, false, gen)
          .output;
    };
    CHECK(gradcheck(
        f, {leaf64({1, 2, 3, 2}, 15), leaf64({1, 2, 3, 2}, 16), leaf64({1, 2, 3, 2}, 17)}));
  }
}

TEST_CASE("fused attention matches matmul + softmax + matmul, forward and backward",
          "[attention]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dt));
    const double tol = dt == DType::Float32 ? 2e-5 : 1e-12;
    SECTION(std::string("contiguous, additive mask, ") + std::string(dtype_name(dt))) {
      Generator g(5);
      Tensor m = randn({1, 1, 9, 9}, g, dt);
      std::vector<Tensor> in{leaf({3, 4, 9, 8}, 1, dt), leaf({3, 4, 9, 8}, 2, dt),
                             leaf({3, 4, 9, 8}, 3, dt)};
      auto fused = run_with_grads(
          [&](const auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2], m).output; },
          in);
      auto composed = run_with_grads(
          [&](const auto& x) { return composed_attention(x[0], x[1], x[2], m); }, in);
      CHECK(compare(fused, composed, tol) == "");
    }
    SECTION(std::string("strided views of a qkv projection, ") + std::string(dtype_name(dt))) {
      std::vector<Tensor> in{leaf({2, 17, 3, 4, 16}, 4, dt)};
      auto fused = run_with_grads(
          [](const auto& x) {
            auto qkv = split_qkv(x[0]);
            return scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).output;
          },
          in);
      auto composed = run_with_grads(
          [](const auto& x) {
            auto qkv = split_qkv(x[0]);
            return composed_attention(qkv[0], qkv[1], qkv[2]);
          },
          in);
      CHECK(compare(fused, composed, tol) == "");
    }
  }
}

TEST_CASE("attention dropout is reproducible and drops about p of the weights", "[attention]") {
  Generator g0(9);
  Tensor q = randn({2, 2, 16, 4}, g0), k = randn({2, 2, 16, 4}, g0);
  // With v = identity (Nk x Nk) each output row is its dropped probability row.
  std::vector<float> eye(16 * 16, 0.0f);
  for (int i = 0; i < 16; ++i) eye[i * 17] = 1.0f;
  Tensor v = expand(from_vector(eye, {1, 1, 16, 16}), {2, 2, 16, 16});
  const double p = 0.25;
  Generator a(7), b(7), c(8);
  auto ra = scaled_dot_product_attention(q, k, v, Tensor(), false, p, {}, true, a);
  auto rb = scaled_dot_product_attention(q, k, v, Tensor(), false, p, {}, true, b);
  auto rc = scaled_dot_product_attention(q, k, v, Tensor(), false, p, {}, true, c);
  CHECK(ra.output.to_vector() == rb.output.to_vector());
  CHECK(ra.output.to_vector() != rc.output.to_vector());
  // Returned probabilities are before dropout; each output entry is 0 or P / (1 - p).
  const auto out = ra.output.to_vector(), probs = ra.probs.to_vector();
  int dropped = 0, wrong = 0;
  for (std::size_t e = 0; e < out.size(); ++e) {
    if (out[e] == 0.0f) {
      ++dropped;
    } else if (std::abs(out[e] - probs[e] / (1 - p)) > 1e-6) {
      ++wrong;
    }
  }
  CHECK(wrong == 0);
  // 1024 draws: the dropped fraction is 0.25 +- 0.014 (one standard deviation).
  const double frac = dropped / 1024.0;
  CHECK(frac > 0.18);
  CHECK(frac < 0.32);
}

TEST_CASE("attention errors name the op and the shapes", "[attention]") {
  Tensor x = ones({1, 2, 3, 4});
  CHECK_THROWS_WITH(scaled_dot_product_attention(x, x, ones({1, 2, 5, 4})),
                    "[scaled_dot_product_attention] expected q (B,H,Nq,Dh), k (B,H,Nk,Dh), v "
                    "(B,H,Nk,Dv), got (1,2,3,4), (1,2,3,4), (1,2,5,4)");
  CHECK_THROWS_WITH(scaled_dot_product_attention(x, x, x, ones({2, 3})),
                    Catch::Contains("mask (2,3) does not broadcast to (B,H,Nq,Nk) = (1,2,3,3)"));
  CHECK_THROWS_WITH(scaled_dot_product_attention(x, x, x, Tensor(), false, 1.0),
                    Catch::Contains("dropout_p must be in [0, 1)"));
}

TEST_CASE("scaled_dot_product_attention_packed", "[gradcheck]") {
  // qkv (B=2, N=3, 3*H*Dh) with H=2, Dh=2; the additive mask hides the last key of batch 1.
  Generator g(21);
  Tensor qkv = randn({2, 3, 12}, g, DType::Float64).requires_grad_();
  Tensor mask = zeros({2, 1, 1, 3}, DType::Float64);
  mask.data<double>()[5] = -1e9;
  auto f = [&](const std::vector<Tensor>& in) {
    return scaled_dot_product_attention_packed(in[0], 2, mask).output;
  };
  CHECK(gradcheck(f, {qkv}).ok);
}

TEST_CASE("packed attention equals attention on the split projection, forward and backward",
          "[attention]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator g(22);
    const std::int64_t B = 3, N = 5, H = 2, Dh = 4;
    Tensor a = randn({B, N, 3 * H * Dh}, g, dt).requires_grad_();
    Tensor b = copy_contiguous(a).requires_grad_();
    Tensor go = randn({B, H, N, Dh}, g, dt);
    AttentionResult packed =
        scaled_dot_product_attention_packed(a, H, Tensor(), false, 0.0, {}, true);
    auto qkv = split_qkv(reshape(b, {B, N, 3, H, Dh}));
    AttentionResult split =
        scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], Tensor(), false, 0.0, {}, true);
    CHECK(packed.output.to_vector<double>() == split.output.to_vector<double>());
    CHECK(packed.probs.to_vector<double>() == split.probs.to_vector<double>());
    sum(mul(packed.output, go)).backward();
    sum(mul(split.output, go)).backward();
    const auto ga = a.grad().to_vector<double>(), gb = b.grad().to_vector<double>();
    REQUIRE(ga.size() == gb.size());
    for (std::size_t i = 0; i < ga.size(); ++i) CHECK(ga[i] == Approx(gb[i]).margin(1e-6));
  }
  CHECK_THROWS_WITH(scaled_dot_product_attention_packed(zeros({2, 3, 10}), 2),
                    Catch::Contains("expected qkv (B, N, 3*H*Dh) with H = 2, got (2,3,10)"));
}
