// Model EMA (optim/ema.h): the update formula and the warmup decay worked by hand, the flat
// parallel pass against a per-tensor double-precision recurrence, and the saved state.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "nn/layers.h"
#include "ops/activation.h"
#include "ops/loss.h"
#include "optim/ema.h"
#include "optim/sgd.h"
#include "scoped_threads.h"

using namespace pw;

namespace {

// Sets every element of t to `value`, as an optimizer step would (in place).
void fill(const Tensor& t, float value) {
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = value;
  t.bump_version();
}

}  // namespace

TEST_CASE("model EMA follows ema = decay * ema + (1 - decay) * value, by hand", "[optim][ema]") {
  Generator g(1);
  nn::Linear lin(3, 2, true, g);  // weight (2, 3) and bias (2): a tiny model
  fill(lin.weight, 1.0f);
  fill(lin.bias, -2.0f);
  optim::ModelEma ema(lin.state_dict(), {.decay = 0.75, .warmup = false});
  REQUIRE(ema.averages().size() == 2);
  CHECK(ema.averages()[0].first == "weight");
  CHECK(ema.averages()[1].first == "bias");
  CHECK(ema.averages()[0].second.to_vector() == std::vector<float>(6, 1.0f));

  fill(lin.weight, 3.0f);
  fill(lin.bias, 2.0f);
  CHECK(ema.update() == 0.75);
  // weight: 0.75 * 1 + 0.25 * 3 = 1.5; bias: 0.75 * -2 + 0.25 * 2 = -1
  CHECK(ema.averages()[0].second.to_vector() == std::vector<float>(6, 1.5f));
  CHECK(ema.averages()[1].second.to_vector() == std::vector<float>(2, -1.0f));
  fill(lin.weight, 5.5f);
  ema.update();
  // 0.75 * 1.5 + 0.25 * 5.5 = 2.5
  CHECK(ema.averages()[0].second.to_vector() == std::vector<float>(6, 2.5f));
  CHECK(ema.num_updates() == 2);
  // The model itself is untouched by the average.
  CHECK(lin.weight.to_vector() == std::vector<float>(6, 5.5f));
}

TEST_CASE("model EMA warmup uses min(decay, (1 + n) / (10 + n))", "[optim][ema]") {
  Generator g(2);
  nn::Linear lin(2, 1, false, g);
  fill(lin.weight, 1.0f);
  optim::ModelEma ema(lin.state_dict(), {.decay = 0.5, .warmup = true});
  CHECK(ema.decay_at(0) == Approx(0.1));
  CHECK(ema.decay_at(1) == Approx(2.0 / 11.0));
  CHECK(ema.decay_at(7) == Approx(8.0 / 17.0));  // still below 0.5
  CHECK(ema.decay_at(8) == 0.5);                 // 9 / 18 reaches the cap
  CHECK(ema.decay_at(1000) == 0.5);
  // Without warmup the decay is constant from the first update.
  optim::ModelEma plain(lin.state_dict(), {.decay = 0.9998, .warmup = false});
  CHECK(plain.decay_at(0) == 0.9998);

  fill(lin.weight, 2.0f);
  CHECK(ema.update() == Approx(0.1));
  // 0.1 * 1 + 0.9 * 2 = 1.9
  CHECK(ema.averages()[0].second.to_vector()[0] == Approx(1.9).epsilon(1e-6));
  fill(lin.weight, 4.0f);
  CHECK(ema.update() == Approx(2.0 / 11.0));
  // (2/11) * 1.9 + (9/11) * 4 = 39.8 / 11
  CHECK(ema.averages()[0].second.to_vector()[1] == Approx(39.8 / 11.0).epsilon(1e-6));
}

TEST_CASE("model EMA's fused pass matches a per-tensor recurrence during SGD", "[optim][ema]") {
  // Tensors past the parallel grain, of sizes that put chunk boundaries inside tensors, on two
  // threads; the reference is computed per tensor in double.
  testing::ScopedThreads threads(2);
  Generator g(3);
  nn::Linear a(300, 211, true, g), b(211, 7, true, g);
  NamedTensors tracked;
  for (auto& [n, t] : a.state_dict()) tracked.emplace_back("a." + n, t);
  for (auto& [n, t] : b.state_dict()) tracked.emplace_back("b." + n, t);
  std::vector<Tensor> params;
  for (auto& [n, t] : tracked) params.push_back(t);
  optim::SGD opt(params, {.lr = 0.1, .momentum = 0.9});
  optim::ModelEma ema(tracked, {.decay = 0.9, .warmup = true});
  std::vector<std::vector<double>> ref;
  for (auto& [n, t] : tracked) ref.push_back(t.to_vector<double>());

  for (int step = 0; step < 4; ++step) {
    Tensor x = randn({5, 300}, g);
    Tensor loss = cross_entropy(b.forward(gelu(a.forward(x))), tensor({0, 1, 2, 3, 4}, {5}));
    opt.zero_grad();
    loss.backward();
    opt.step();
    const double d = ema.update();
    CHECK(d == Approx(std::min(0.9, (1.0 + step) / (10.0 + step))));
    for (std::size_t k = 0; k < tracked.size(); ++k) {
      const auto v = tracked[k].second.to_vector<double>();
      for (std::size_t i = 0; i < v.size(); ++i) ref[k][i] = d * ref[k][i] + (1 - d) * v[i];
    }
  }
  for (std::size_t k = 0; k < tracked.size(); ++k) {
    INFO(tracked[k].first);
    const auto got = ema.averages()[k].second.to_vector<double>();
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, std::abs(got[i] - ref[k][i]) / (1e-3 + std::abs(ref[k][i])));
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("model EMA state round-trips and copies into a second model", "[optim][ema]") {
  Generator g(4);
  nn::Linear lin(4, 3, true, g), other(4, 3, true, g);
  optim::ModelEma ema(lin.state_dict(), {.decay = 0.5, .warmup = true});
  fill(lin.weight, 7.0f);
  ema.update();
  ema.update();
  optim::ModelEma back(other.state_dict(), {.decay = 0.5, .warmup = true});
  NamedTensors saved;
  for (auto& [n, t] : ema.averages()) saved.emplace_back(n, copy_contiguous(t));
  back.load_state(saved, ema.state_scalars());
  CHECK(back.num_updates() == 2);
  CHECK(back.decay_at(back.num_updates()) == ema.decay_at(ema.num_updates()));
  for (std::size_t k = 0; k < saved.size(); ++k)
    CHECK(back.averages()[k].second.to_vector() == ema.averages()[k].second.to_vector());

  back.copy_to(other.state_dict());
  CHECK(other.weight.to_vector() == ema.averages()[0].second.to_vector());
  CHECK(other.bias.to_vector() == ema.averages()[1].second.to_vector());

  NamedTensors missing{saved[0]};
  CHECK_THROWS_WITH(back.load_state(missing, ema.state_scalars()),
                    Catch::Contains("no average for 'bias'"));
  NamedTensors wrong{saved[0], {"bias", zeros({5})}};
  CHECK_THROWS_WITH(back.load_state(wrong, ema.state_scalars()),
                    Catch::Contains("'bias' has shape (5)"));
  CHECK_THROWS_WITH(optim::ModelEma(lin.state_dict(), {.decay = 1.5}), Catch::Contains("decay"));
}
