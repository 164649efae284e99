// The whole stack at once: modules, ops, autograd and each optimizer learn a small problem.
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>

#include "core/autograd.h"
#include "nn/layers.h"
#include "ops/loss.h"
#include "optim/adam.h"
#include "optim/sgd.h"

using namespace pw;

namespace {

// Two interleaved half circles ("two moons") with Gaussian noise: 2-D points and 0/1 labels.
std::pair<Tensor, Tensor> two_moons(std::int64_t n, double noise, Generator& g) {
  std::vector<float> xs, ys;
  for (std::int64_t i = 0; i < n; ++i) {
    const bool upper = i % 2 == 0;
    const double t = std::numbers::pi * g.uniform();
    const double x = upper ? std::cos(t) : 1 - std::cos(t);
    const double y = upper ? std::sin(t) : 0.5 - std::sin(t);
    xs.push_back(static_cast<float>(x + noise * g.normal()));
    xs.push_back(static_cast<float>(y + noise * g.normal()));
    ys.push_back(upper ? 0.0f : 1.0f);
  }
  return {from_vector(xs, {n, 2}), from_vector(ys, {n})};
}

double accuracy(nn::Module& model, const Tensor& x, const Tensor& y) {
  NoGradGuard no_grad;
  const auto logits = model.forward(x).to_vector();
  const auto labels = y.to_vector();
  int correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i)
    correct += (logits[2 * i + 1] > logits[2 * i]) == (labels[i] == 1.0f);
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

// Full-batch training of a 2-32-32-2 MLP; returns the final train accuracy.
template <typename MakeOptimizer>
double train_mlp(MakeOptimizer make_optimizer, int steps) {
  Generator g(7);
  auto [x, y] = two_moons(200, 0.1, g);
  nn::Sequential model({std::make_shared<nn::Linear>(2, 32, true, g), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(32, 32, true, g), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(32, 2, true, g)});
  auto opt = make_optimizer(model.parameters());
  CHECK(accuracy(model, x, y) < 0.9);  // not solved before training
  for (int s = 0; s < steps; ++s) {
    Tensor loss = cross_entropy(model.forward(x), y);
    opt->zero_grad();
    loss.backward();
    opt->step();
  }
  return accuracy(model, x, y);
}

}  // namespace

TEST_CASE("an MLP learns two moons to 100% train accuracy with SGD", "[nn][optim]") {
  const double acc = train_mlp(
      [](std::vector<Tensor> params) {
        optim::SGDOptions o;
        o.lr = 0.1;
        o.momentum = 0.9;
        return std::make_unique<optim::SGD>(std::move(params), o);
      },
      1500);
  CHECK(acc == 1.0);
}

TEST_CASE("an MLP learns two moons to 100% train accuracy with AdamW", "[nn][optim]") {
  const double acc = train_mlp(
      [](std::vector<Tensor> params) {
        optim::AdamWOptions o;
        o.lr = 0.01;
        return std::make_unique<optim::AdamW>(std::move(params), o);
      },
      1000);
  CHECK(acc == 1.0);
}
