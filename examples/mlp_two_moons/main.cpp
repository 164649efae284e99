// A two-layer MLP learns the two-moons problem (scikit-learn's make_moons, noise 0.1) with
// AdamW, then saves a checkpoint of the model and the optimizer and restores it into fresh
// objects. Exits with 1 when the test accuracy stays below 95% or the restored model differs.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>
#include <vector>

#include "core/autograd.h"
#include "io/checkpoint.h"
#include "nn/layers.h"
#include "ops/loss.h"
#include "optim/adam.h"

using namespace pw;

namespace {

struct Moons {
  Tensor x;  // (n, 2)
  Tensor y;  // (n) class indices 0 / 1 as floats
};

// Half the points on the upper moon (cos t, sin t), half on the lower one (1 - cos t,
// 0.5 - sin t), t uniform in [0, pi], plus Gaussian noise.
Moons make_moons(std::int64_t n, double noise, Generator& gen) {
  std::vector<float> x, y;
  for (std::int64_t i = 0; i < n; ++i) {
    const bool lower = i % 2 == 1;
    const double t = std::numbers::pi * gen.uniform();
    const double px = lower ? 1 - std::cos(t) : std::cos(t);
    const double py = lower ? 0.5 - std::sin(t) : std::sin(t);
    x.push_back(static_cast<float>(px + noise * gen.normal()));
    x.push_back(static_cast<float>(py + noise * gen.normal()));
    y.push_back(lower ? 1.0f : 0.0f);
  }
  return {from_vector(x, {n, 2}), from_vector(y, {n})};
}

nn::Sequential make_mlp(Generator& gen) {
  return nn::Sequential(
      {std::make_shared<nn::Linear>(2, 32, true, gen), std::make_shared<nn::ReLU>(),
       std::make_shared<nn::Linear>(32, 32, true, gen), std::make_shared<nn::ReLU>(),
       std::make_shared<nn::Linear>(32, 2, true, gen)});
}

double accuracy(nn::Sequential& model, const Moons& data) {
  NoGradGuard no_grad;
  const std::vector<float> logits = model.forward(data.x).to_vector<float>();
  const std::vector<float> labels = data.y.to_vector<float>();
  std::size_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i)
    correct += static_cast<float>(logits[2 * i + 1] > logits[2 * i]) == labels[i];
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

}  // namespace

int main() {
  Generator gen(0);
  const Moons train = make_moons(512, 0.1, gen), test = make_moons(512, 0.1, gen);
  nn::Sequential model = make_mlp(gen);
  optim::AdamW opt(model.parameters(), {.lr = 1e-2, .weight_decay = 1e-4});

  for (int step = 1; step <= 300; ++step) {  // full batch
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(train.x), train.y);
    loss.backward();
    opt.step();
    if (step % 100 == 0) std::printf("step %d: loss %.4f\n", step, loss.item());
  }
  const double acc = accuracy(model, test);
  std::printf("test accuracy: %.2f%%\n", 100 * acc);

  // A checkpoint of the model and the optimizer, restored into fresh objects.
  const auto path = (std::filesystem::temp_directory_path() / "mlp_two_moons.safetensors").string();
  Checkpoint c;
  c.groups["model"] = model.state_dict();
  const optim::OptimizerState os = opt.state_dict();
  c.groups["optimizer"] = os.tensors;
  c.set_json("optimizer", os.scalars);
  write_checkpoint(path, c);

  const Checkpoint back = read_checkpoint(path);
  std::filesystem::remove(path);
  Generator other(1);
  nn::Sequential restored = make_mlp(other);
  restored.load_state_dict(back.group("model"));
  optim::AdamW restored_opt(restored.parameters(), {.lr = 1e-2, .weight_decay = 1e-4});
  restored_opt.load_state_dict({back.group("optimizer"), back.json("optimizer")});
  const double restored_acc = accuracy(restored, test);
  std::printf("restored from a checkpoint: %.2f%%\n", 100 * restored_acc);

  if (acc < 0.95 || restored_acc != acc) {
    std::fprintf(stderr, "mlp_two_moons: expected >= 95%% and the same after restoring\n");
    return 1;
  }
  return 0;
}
