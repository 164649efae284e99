// The Compact Transformer pieces in nn/: the convolutional tokenizer (names, shapes, init, and
// its forward against conv2d -> ReLU -> max_pool2d composed in CCT's order) and sequence
// pooling (values by hand, gradients by finite differences).
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "nn/stem.h"
#include "nn_test_util.h"
#include "op_test_helpers.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/pool.h"
#include "ops/reduce.h"
#include "ops/shape.h"

using namespace pw;
using namespace pw::nn;
using pw::testing::max_abs_diff;

namespace {

// CCT's Tokenizer written out with the ops, ReLU before the pool as CCT has it:
// for each conv, max_pool2d(relu(conv2d(y, w, stride, k / 2))), then (B, G*G, D) tokens.
Tensor cct_reference(const Tensor& x, const std::vector<Tensor>& weights,
                     const ConvTokenizerConfig& c) {
  Tensor y = x;
  for (const Tensor& w : weights) {
    y = relu(conv2d(y, w, Tensor(), c.stride, c.kernel / 2));
    if (c.max_pool) y = max_pool2d(y, 3, 2, 1);
  }
  return transpose(reshape(y, {y.shape()[0], y.shape()[1], -1}), 1, 2);
}

}  // namespace

TEST_CASE("the conv tokenizer names its convs conv.{i}.weight, (out, in, k, k), no bias", "[nn]") {
  ConvTokenizerConfig c;
  c.channels = 3, c.dim = 32, c.layers = 3, c.hidden = 16, c.kernel = 5;
  ConvTokenizer tok(c);
  std::vector<std::pair<std::string, Shape>> got;
  for (auto& [name, t] : tok.named_parameters()) got.emplace_back(name, t.shape());
  CHECK(got == std::vector<std::pair<std::string, Shape>>{{"conv.0.weight", {16, 3, 5, 5}},
                                                          {"conv.1.weight", {16, 16, 5, 5}},
                                                          {"conv.2.weight", {32, 16, 5, 5}}});
}

TEST_CASE("conv tokenizer weights are Kaiming-normal: std sqrt(2 / fan_in), mean 0", "[nn]") {
  ConvTokenizerConfig c;
  c.dim = 128, c.hidden = 64;
  Generator gen(3);
  ConvTokenizer tok(c, gen);
  const Tensor& w = tok.conv->operator[](1).weight;  // (128, 64, 3, 3): 73,728 draws
  const double n = static_cast<double>(w.numel());
  const double m = sum(w).item() / n;
  const double sd = std::sqrt(sum(mul(w, w)).item() / n - m * m);
  CHECK(std::abs(m) < 3 * std::sqrt(2.0 / 576) / std::sqrt(n));
  CHECK(sd == Approx(std::sqrt(2.0 / 576)).epsilon(0.02));
}

TEST_CASE("the conv tokenizer pools before its ReLU with CCT's outputs and gradients", "[nn]") {
  struct Case {
    std::int64_t layers, kernel, stride;
    bool pool;
    std::int64_t side;  // input side
  };
  for (const Case& k : {Case{2, 3, 1, true, 12}, Case{2, 3, 2, false, 12}, Case{1, 5, 1, true, 9},
                        Case{3, 3, 1, true, 10}}) {
    INFO("layers " << k.layers << " kernel " << k.kernel << " stride " << k.stride << " pool "
                   << k.pool << " side " << k.side);
    ConvTokenizerConfig c;
    c.channels = 3, c.dim = 8, c.layers = k.layers, c.hidden = 6, c.kernel = k.kernel;
    c.stride = k.stride, c.max_pool = k.pool;
    Generator gen(k.side + k.layers);
    ConvTokenizer tok(c, gen);
    std::vector<Tensor> weights;
    for (auto& layer : *tok.conv) weights.push_back(layer->weight);
    std::vector<Tensor> in{randn({2, 3, k.side, k.side}, gen).requires_grad_()};
    for (const Tensor& w : weights) in.push_back(w);
    const auto mine = testing::run_with_grads([&](const auto& v) { return tok.forward(v[0]); }, in);
    const auto ref = testing::run_with_grads(
        [&](const auto& v) {
          return cct_reference(v[0], std::vector<Tensor>(v.begin() + 1, v.end()), c);
        },
        in);
    // float32, and the second conv reads channels-last maps in (y, x, c) order where the
    // reference's contiguous ones go in (c, y, x) order: the GEMMs add in other orders.
    CHECK(testing::compare(mine, ref, 2e-5) == "");
    // The token count follows sides(): G*G tokens of width D.
    const std::int64_t G = ConvTokenizer::sides(c, k.side).back();
    CHECK(mine.output.shape() == Shape{2, G * G, 8});
  }
}

TEST_CASE("conv tokenizer sides: conv with padding k / 2, then the 3x3 stride-2 pool", "[nn]") {
  ConvTokenizerConfig c;  // 2 layers, 3x3, stride 1, max-pool
  // 32 -> conv 32 -> pool 16 -> conv 16 -> pool 8.
  CHECK(ConvTokenizer::sides(c, 32) == std::vector<std::int64_t>{32, 16, 8});
  // 30 -> 30 -> 15 -> 15 -> 8 (floor((15 + 2 - 3) / 2) + 1).
  CHECK(ConvTokenizer::sides(c, 30) == std::vector<std::int64_t>{30, 15, 8});
  c.stride = 2, c.max_pool = false, c.layers = 3;  // Xiao et al.'s stride-2 stem
  CHECK(ConvTokenizer::sides(c, 32) == std::vector<std::int64_t>{16, 8, 4, 4});
  c.kernel = 7, c.layers = 1;  // (32 + 6 - 7) / 2 + 1
  CHECK(ConvTokenizer::sides(c, 32) == std::vector<std::int64_t>{16, 16});
}

TEST_CASE("conv -> max-pool -> ReLU over channels-last maps, as the tokenizer runs it",
          "[gradcheck]") {
  // conv2d returns channels-last maps; the pool keeps them and the ReLU runs on (B, H, W, C).
  auto stem = [](const std::vector<Tensor>& in) {
    Tensor y = conv2d(in[0], in[1], Tensor(), 1, 1);
    y = max_pool2d(y, 3, 2, 1);
    y = permute(relu(permute(y, {0, 2, 3, 1})), {0, 3, 1, 2});
    y = conv2d(y, in[2], Tensor(), 1, 1);
    return transpose(flatten(y, 2), 1, 2);
  };
  CHECK_GRADCHECK(stem, {testing::leaf64({1, 2, 6, 6}, 61), testing::leaf64({3, 2, 3, 3}, 62),
                         testing::leaf64({4, 3, 3, 3}, 63)});
}

TEST_CASE("sequence pooling by hand: softmax weights over the tokens", "[nn]") {
  // w = (ln 2, 0), b = 0.7 (a shift that softmax ignores).
  // Sample 0: tokens (1,0), (0,1), (1,1): scores ln2, 0, ln2 -> weights 2/5, 1/5, 2/5,
  //   output 0.4 (1,0) + 0.2 (0,1) + 0.4 (1,1) = (0.8, 0.6).
  // Sample 1: tokens (2,0), (0,0), (0,2): scores 2 ln2, 0, 0 -> weights 4/6, 1/6, 1/6,
  //   output (4/3, 1/3).
  const Tensor x = tensor({1, 0, 0, 1, 1, 1, 2, 0, 0, 0, 0, 2}, {2, 3, 2}, DType::Float64);
  const Tensor w = tensor({std::log(2.0), 0}, {1, 2}, DType::Float64);
  const Tensor b = tensor({0.7}, {1}, DType::Float64);
  const auto y = sequence_pool(x, w, b).to_vector<double>();
  REQUIRE(y.size() == 4);
  CHECK(y[0] == Approx(0.8).margin(1e-15));
  CHECK(y[1] == Approx(0.6).margin(1e-15));
  CHECK(y[2] == Approx(4.0 / 3).margin(1e-15));
  CHECK(y[3] == Approx(1.0 / 3).margin(1e-15));
  // The module: Linear(D, 1)'s parameters, trunc_normal(0.02) weight and zero bias.
  SequencePool pool(4096);
  CHECK(pool.named_parameters().size() == 2);
  CHECK(pool.weight.shape() == Shape{1, 4096});
  CHECK(pool.bias.shape() == Shape{1});
  CHECK(testing::max_abs(pool.bias) == 0);
  const double rms = std::sqrt(sum(mul(pool.weight, pool.weight)).item() / 4096);
  CHECK(rms == Approx(0.02).epsilon(0.05));
  CHECK_THROWS_WITH(sequence_pool(x, zeros({1, 3}, DType::Float64), b),
                    "[sequence_pool] expected x (B, N, D), weight (1, D) and bias (1), got "
                    "(2,3,2), (1,3) and (1)");
}

TEST_CASE("sequence_pool", "[gradcheck]") {
  CHECK_GRADCHECK(
      [](const auto& in) { return sequence_pool(in[0], in[1], in[2]); },
      {testing::leaf64({2, 5, 3}, 71), testing::leaf64({1, 3}, 72), testing::leaf64({1}, 73)});
  // The gradient of the score bias is zero: softmax is invariant to a shift.
  std::vector<Tensor> in{testing::leaf64({2, 5, 3}, 71), testing::leaf64({1, 3}, 72),
                         testing::leaf64({1}, 73)};
  const auto r =
      testing::run_with_grads([](const auto& v) { return sequence_pool(v[0], v[1], v[2]); }, in);
  CHECK(testing::max_abs(r.grads[2]) < 1e-15);
}
