// Autocast: each GEMM op under AutocastGuard, forward and backward, against float32 on
// bfloat16-rounded inputs; the weight cast cache; a nano ViT trained in bf16 against float32.
#include <catch2/catch.hpp>

#include "core/autocast.h"
#include "core/autograd.h"
#include "core/gradcheck.h"
#include "models/vit.h"
#include "nn_test_util.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/linear_gelu.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "optim/adam.h"
#include "scoped_threads.h"

using namespace pw;
using pw::testing::max_abs;
using pw::testing::max_abs_diff;

namespace {

// t rounded to bfloat16 and back: the values a bf16 GEMM reads.
Tensor rounded(const Tensor& t) {
  return copy_contiguous(copy_contiguous(t, DType::BFloat16), DType::Float32);
}

Tensor random(const Shape& shape, std::uint64_t seed) {
  Generator g(seed);
  return randn(shape, g);
}

// Relative difference |a - b| / max|b| (0 for two zero tensors).
double rel_diff(const Tensor& a, const Tensor& b) {
  const double scale = max_abs(b);
  return scale == 0 ? max_abs_diff(a, b) : max_abs_diff(a, b) / scale;
}

// fn's output and input gradients for the upstream gradient G, with fn run under autocast or
// not. Inputs are fresh leaves holding `values`.
struct Result {
  Tensor out;
  std::vector<Tensor> grads;
};
Result run(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
           const std::vector<Tensor>& values, const Tensor& G, bool autocast) {
  std::vector<Tensor> in;
  for (const auto& v : values) in.push_back(v.detach().requires_grad_());
  Tensor y;
  {
    AutocastGuard guard(autocast);
    y = fn(in);
  }
  y.backward(G);
  Result r{y.detach(), {}};
  for (const auto& t : in) r.grads.push_back(t.grad());
  return r;
}

}  // namespace

TEST_CASE("linear under autocast: bf16 operands, float32 accumulation, forward and backward",
          "[bf16][autocast]") {
  const std::int64_t R = 37, in = 33, out = 19;
  Tensor x = random({R, in}, 1), w = random({out, in}, 2), b = random({out}, 3);
  Tensor G = random({R, out}, 4);
  auto fn = [](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); };
  Result bf = run(fn, {x, w, b}, G, true);
  CHECK(bf.out.dtype() == DType::Float32);
  for (const auto& g : bf.grads) CHECK(g.dtype() == DType::Float32);
  // The reference: float32 on the rounded values; the GEMM backward reads G rounded too, the
  // bias gradient sums G as it is.
  Tensor ref = linear(rounded(x), rounded(w), b);
  CHECK(rel_diff(bf.out, ref) < 1e-5);
  CHECK(rel_diff(bf.grads[0], matmul(rounded(G), rounded(w))) < 1e-5);
  CHECK(rel_diff(bf.grads[1], matmul(transpose(rounded(G), 0, 1), rounded(x))) < 1e-5);
  CHECK(rel_diff(bf.grads[2], sum(G, {0})) < 1e-6);
  // And it differs from plain float32 by about bf16's precision, not more.
  Result fp = run(fn, {x, w, b}, G, false);
  CHECK(rel_diff(bf.out, fp.out) > 1e-5);
  CHECK(rel_diff(bf.out, fp.out) < 2e-2);
}

TEST_CASE("linear_gelu: gelu(linear) without autocast, one fused bf16 node with it",
          "[bf16][autocast]") {
  const std::int64_t R = 45, in = 24, out = 40;
  Tensor x = random({3, R / 3, in}, 60), w = random({out, in}, 61), b = random({out}, 62);
  Tensor G = random({3, R / 3, out}, 63);
  auto fused = [](const std::vector<Tensor>& t) { return linear_gelu(t[0], t[1], t[2]); };
  auto plain = [](const std::vector<Tensor>& t) { return gelu(linear(t[0], t[1], t[2])); };
  // float32: exactly the two ops.
  Result f = run(fused, {x, w, b}, G, false), p = run(plain, {x, w, b}, G, false);
  CHECK(max_abs_diff(f.out, p.out) == 0);
  for (int i = 0; i < 3; ++i) CHECK(max_abs_diff(f.grads[i], p.grads[i]) == 0);
  // Under autocast: a bfloat16 output, and gradients of the float32 ops on the rounded x, w.
  Result bf = run(fused, {x, w, b}, G, true);
  CHECK(bf.out.dtype() == DType::BFloat16);
  Result ref = run(plain, {rounded(x), rounded(w), b}, G, false);
  CHECK(rel_diff(bf.out, ref.out) < 1e-2);            // the output is rounded to bf16 once
  CHECK(rel_diff(bf.grads[2], ref.grads[2]) < 1e-4);  // db sums dh unrounded
  CHECK(rel_diff(bf.grads[0], ref.grads[0]) < 1e-2);  // dh rounded for the GEMMs
  CHECK(rel_diff(bf.grads[1], ref.grads[1]) < 1e-2);
  // Inference (no node recorded) computes the same values.
  NoGradGuard no_grad;
  AutocastGuard autocast;
  CHECK(rel_diff(linear_gelu(x, w, b), ref.out) < 1e-2);
}

TEST_CASE("gradcheck: linear_gelu", "[gradcheck]") {
  Tensor x = testing::leaf64({2, 3, 4}, 70), w = testing::leaf64({5, 4}, 71),
         b = testing::leaf64({5}, 72);
  auto r = gradcheck([](const auto& in) { return linear_gelu(in[0], in[1], in[2]); }, {x, w, b});
  CHECK(r.ok);
  INFO(r.message);
}

TEST_CASE("matmul under autocast: transposed, batched and broadcast operands", "[bf16][autocast]") {
  Tensor G2 = random({5, 4, 7, 6}, 10);
  // (5, 4, 7, 9) @ (4, 9, 6): broadcast over the first batch dim, a transposed right operand.
  Tensor a = random({5, 4, 7, 9}, 11), bt = random({4, 6, 9}, 12);
  auto fn = [](const std::vector<Tensor>& t) { return matmul(t[0], transpose(t[1], 1, 2)); };
  Result bf = run(fn, {a, bt}, G2, true);
  Tensor ref = matmul(rounded(a), transpose(rounded(bt), 1, 2));
  CHECK(rel_diff(bf.out, ref) < 1e-5);
  Tensor gr = rounded(G2);
  CHECK(rel_diff(bf.grads[0], matmul(gr, rounded(bt))) < 1e-5);
  CHECK(rel_diff(bf.grads[1], sum(matmul(transpose(gr, 2, 3), rounded(a)), {0})) < 1e-5);
  // Three batch dims (one engine call per outer matrix) and a transposed left operand.
  Tensor c = random({2, 3, 2, 8, 5}, 13), d = random({2, 3, 2, 8, 4}, 14);
  Tensor G3 = random({2, 3, 2, 5, 4}, 15);
  auto fn3 = [](const std::vector<Tensor>& t) { return matmul(transpose(t[0], 3, 4), t[1]); };
  Result bf3 = run(fn3, {c, d}, G3, true);
  CHECK(rel_diff(bf3.out, matmul(transpose(rounded(c), 3, 4), rounded(d))) < 1e-5);
  CHECK(rel_diff(bf3.grads[1], matmul(rounded(c), rounded(G3))) < 1e-5);
}

TEST_CASE("conv2d under autocast: the patch-embedding GEMM and the im2col path",
          "[bf16][autocast]") {
  Tensor x = random({3, 3, 8, 8}, 20), w = random({16, 3, 4, 4}, 21), b = random({16}, 22);
  // stride 4: the patch path; 2: im2col writing bf16 cols; 1: a channels-last input, whose
  // im2col copies (y, x, c) runs into bf16 cols.
  for (std::int64_t stride : {4, 2, 1}) {
    if (stride == 1) x = permute(copy_contiguous(permute(x, {0, 2, 3, 1})), {0, 3, 1, 2});
    auto fn = [stride](const std::vector<Tensor>& t) {
      return conv2d(t[0], t[1], t[2], stride, stride == 4 ? 0 : 1);
    };
    Tensor y = fn({x, w, b});
    Tensor G = random(y.shape(), 23);
    Result bf = run(fn, {x, w, b}, G, true);
    // Reference: float32 on rounded inputs; the backward GEMMs read G rounded.
    Result ref = run(fn, {rounded(x), rounded(w), b}, rounded(G), false);
    INFO("stride " << stride);
    CHECK(rel_diff(bf.out, ref.out) < 1e-5);
    CHECK(rel_diff(bf.grads[0], ref.grads[0]) < 1e-5);
    CHECK(rel_diff(bf.grads[1], ref.grads[1]) < 1e-5);
    CHECK(rel_diff(bf.grads[2], run(fn, {x, w, b}, G, false).grads[2]) < 1e-6);
  }
}

TEST_CASE("attention under autocast against float32 on rounded q, k, v",
          "[bf16][autocast][attention]") {
  testing::ScopedThreads threads(2);
  const std::int64_t B = 3, N = 17, H = 2, Dh = 8;
  Tensor qkv = random({B, N, 3 * H * Dh}, 30);
  Tensor G = random({B, H, N, Dh}, 31);
  Generator mg(32);
  Tensor mask = mul(rand({1, 1, N, N}, mg), 2.0);
  auto packed = [&](const std::vector<Tensor>& t) {
    return scaled_dot_product_attention_packed(t[0], H, mask).output;
  };
  Result bf = run(packed, {qkv}, G, true);
  Result ref = run(packed, {rounded(qkv)}, G, false);
  CHECK(bf.out.dtype() == DType::BFloat16);  // as PyTorch's autocast: a bf16 product's output
  CHECK(bf.grads[0].dtype() == DType::Float32);
  // The bf16 path also rounds P (forward) and dO, dS (backward) for its products: agreement to
  // a few bf16 ulps.
  CHECK(rel_diff(bf.out, ref.out) < 1e-2);
  CHECK(rel_diff(bf.grads[0], ref.grads[0]) < 2e-2);
  // Separate q, k, v and a boolean mask.
  Tensor q = random({B, H, N, Dh}, 33), k = random({B, H, N, Dh}, 34),
         v = random({B, H, N, Dh}, 35);
  Tensor keep = tensor({1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, N});
  auto separate = [&](const std::vector<Tensor>& t) {
    return scaled_dot_product_attention(t[0], t[1], t[2], keep, true).output;
  };
  Result bf2 = run(separate, {q, k, v}, G, true);
  Result ref2 = run(separate, {rounded(q), rounded(k), rounded(v)}, G, false);
  CHECK(rel_diff(bf2.out, ref2.out) < 1e-2);
  for (int i = 0; i < 3; ++i) CHECK(rel_diff(bf2.grads[i], ref2.grads[i]) < 2e-2);
  // Probabilities returned for attention maps are float32 and sum to one.
  AutocastGuard guard;
  auto r = scaled_dot_product_attention(q, k, v, Tensor(), false, 0.0, {}, true);
  CHECK(r.probs.dtype() == DType::Float32);
  CHECK(max_abs_diff(sum(r.probs, {3}), ones({B, H, N})) < 1e-2);
}

TEST_CASE("attention dropout under autocast matches float32 with the same mask",
          "[bf16][autocast][attention]") {
  const std::int64_t B = 2, N = 9, H = 2, Dh = 4;
  Tensor qkv = random({B, N, 3 * H * Dh}, 40);
  Tensor G = random({B, H, N, Dh}, 41);
  auto fn = [&](const std::vector<Tensor>& t) {
    Generator g(7);  // the same keep mask in both runs
    return scaled_dot_product_attention_packed(t[0], H, Tensor(), false, 0.3, {}, false, g).output;
  };
  Result bf = run(fn, {qkv}, G, true);
  Result ref = run(fn, {rounded(qkv)}, G, false);
  CHECK(rel_diff(bf.out, ref.out) < 1e-2);
  CHECK(rel_diff(bf.grads[0], ref.grads[0]) < 2e-2);
}

TEST_CASE("a weight is cast to bf16 once per autocast scope and refreshed after it changes",
          "[bf16][autocast]") {
  Tensor w = random({4, 3}, 50).requires_grad_();
  Tensor x = random({2, 3}, 51);
  Tensor kept;
  {
    AutocastGuard guard;
    Tensor c1 = autocast_bf16(w), c2 = autocast_bf16(w);
    CHECK(c1.shares_storage(c2));
    // Activations are not cached: each use casts what it is given.
    CHECK_FALSE(autocast_bf16(x).shares_storage(autocast_bf16(x)));
    {
      NoGradGuard no_grad;
      Tensor wd = w.detach();
      mul_(wd, 2.0);  // an in-place change (bumps the version)
    }
    Tensor c3 = autocast_bf16(w);
    CHECK_FALSE(c3.shares_storage(c1));
    CHECK(c3.at({0, 0}) == static_cast<float>(bfloat16(static_cast<float>(w.at({0, 0})))));
    // A nested disabled guard turns autocast off without dropping the cache.
    {
      AutocastGuard off(false);
      CHECK_FALSE(Autocast::is_enabled());
      CHECK(linear(x, w).dtype() == DType::Float32);
    }
    CHECK(Autocast::is_enabled());
    CHECK(autocast_bf16(w).shares_storage(c3));
    kept = c3;
  }
  // The cache ends with the outermost guard: the next scope (the next step) casts afresh.
  CHECK_FALSE(Autocast::is_enabled());
  AutocastGuard again;
  CHECK_FALSE(autocast_bf16(w).shares_storage(kept));
}

namespace {

// A nano-width ViT (2 blocks) on a fixed synthetic batch whose label is set by the image's
// brightest quadrant: `steps` AdamW steps, in bf16 or float32, returning every loss.
std::vector<double> train_losses(bool bf16, int steps) {
  models::ViTConfig cfg = models::vit_preset("nano");
  cfg.depth = 2;
  cfg.num_classes = 4;
  Generator gen(0);
  models::VisionTransformer model(cfg, gen);
  optim::AdamW opt(model.parameters(), {.lr = 2e-3});
  Generator dg(1);
  const std::int64_t Bn = 32;
  Tensor x = mul(randn({Bn, 3, 32, 32}, dg), 0.5);
  std::vector<float> labels;
  {
    auto v = x.to_vector();
    for (std::int64_t i = 0; i < Bn; ++i) {
      const std::int64_t c = i % 4;
      labels.push_back(static_cast<float>(c));
      // Brighten quadrant c of every channel.
      for (std::int64_t ch = 0; ch < 3; ++ch)
        for (std::int64_t y = 0; y < 16; ++y)
          for (std::int64_t xx = 0; xx < 16; ++xx)
            v[((i * 3 + ch) * 32 + y + 16 * (c / 2)) * 32 + xx + 16 * (c % 2)] += 1.5f;
    }
    x = from_vector(v, {Bn, 3, 32, 32});
  }
  Tensor y = from_vector(labels, {Bn});
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    Tensor loss;
    {
      AutocastGuard guard(bf16);
      loss = cross_entropy(model.forward(x), y);
    }
    losses.push_back(loss.item());
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  return losses;
}

}  // namespace

TEST_CASE("a ViT trains in bf16 as it does in float32", "[bf16][autocast][vit]") {
  const auto fp = train_losses(false, 50), bf = train_losses(true, 50);
  // The same initial weights: the first loss agrees to 1e-2 relative.
  CHECK(std::abs(bf[0] - fp[0]) / fp[0] < 1e-2);
  // 50 steps lower the loss in both, and bf16 ends close to float32.
  CHECK(fp.back() < 0.2 * fp[0]);
  CHECK(bf.back() < 0.2 * bf[0]);
  CHECK(bf.back() < fp.back() + 0.05 * fp[0]);
}

TEST_CASE("a conv-stem, attention-pooled ViT under autocast matches float32 within bf16 error",
          "[bf16][autocast][vit]") {
  models::ViTConfig cfg = models::vit_preset("nano");
  cfg.depth = 2;
  cfg.stem = "conv", cfg.stem_channels = 32, cfg.pool = "attn", cfg.pos_embed = "none";
  Generator gen(0);
  models::VisionTransformer model(cfg, gen);
  Generator dg(1);
  const Tensor x = randn({8, 3, 32, 32}, dg);
  const Tensor y = from_vector(std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}, {8});
  struct Step {
    Tensor logits;
    std::vector<std::pair<std::string, Tensor>> grads;
  };
  auto step = [&](bool bf16) {
    model.zero_grad();
    Step s;
    Tensor loss;
    {
      AutocastGuard guard(bf16);
      s.logits = model.forward(x);
      loss = cross_entropy(s.logits, y);
    }
    loss.backward();
    for (auto& [name, p] : model.named_parameters()) s.grads.emplace_back(name, p.grad());
    return s;
  };
  const Step fp = step(false), bf = step(true);
  // bf16 rounding shows (so the GEMMs did read bf16), and stays within its error.
  CHECK(rel_diff(bf.logits, fp.logits) > 1e-4);
  CHECK(rel_diff(bf.logits, fp.logits) < 2e-2);
  // Gradients pass through up to a dozen bf16 GEMMs on their way to the first conv: within 8%
  // of each tensor's largest entry. attention_pool.bias is skipped: its gradient is zero up to
  // rounding (softmax ignores a shift), so the two roundings differ completely.
  REQUIRE(bf.grads.size() == fp.grads.size());
  for (std::size_t i = 0; i < fp.grads.size(); ++i) {
    INFO(fp.grads[i].first);
    REQUIRE(bf.grads[i].second.defined());
    if (fp.grads[i].first == "attention_pool.bias") continue;
    CHECK(rel_diff(bf.grads[i].second, fp.grads[i].second) < 8e-2);
  }
}
