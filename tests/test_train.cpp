// End to end: `vit train` on synthetic CIFAR-format files — overfitting, save/load/eval
// agreement, exact resume, and the errors of bad input.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/eval.h"
#include "apps/train/trainer.h"
#include "apps/weights.h"
#include "cifar_fixture.h"
#include "core/autograd.h"

using namespace pw;
using namespace pw::app;
namespace fs = std::filesystem;

namespace {

TrainOptions tiny_options(const fs::path& data, const fs::path& out) {
  TrainOptions o;
  o.preset = "nano";
  o.data = data.string();
  o.output = out.string();
  o.name = "run";
  o.progress = false;
  o.threads = 0;  // the suite runs one thread per test process (see the Makefile)
  o.workers = 1;
  return o;
}

std::vector<double> step_losses(const fs::path& run) {
  std::vector<double> losses;
  std::ifstream in(run / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "step") losses.push_back(j["loss"].get<double>());
  }
  return losses;
}

}  // namespace

TEST_CASE("a nano ViT overfits 64 images, and save, load and eval agree", "[train]") {
  testing::TempDir tmp("overfit");
  testing::write_synthetic_cifar(tmp.path / "data", 64, 64, 1, /*test_equals_train=*/true);
  TrainOptions o = tiny_options(tmp.path / "data", tmp.path / "runs");
  o.model_overrides = {"depth=2"};  // nano's width and heads, fewer blocks: a fast test
  o.epochs = 20;
  o.batch_size = 32;
  o.lr = 3e-3;
  o.warmup_epochs = 2;
  o.augment = "none";
  o.smoothing = 0;
  o.drop_path = 0;
  o.weight_decay = 0;
  o.eval_every = 20;
  const TrainResult r = train(o);
  CHECK(r.final_accuracy == 1.0);
  const fs::path run = r.run_dir;
  for (const char* f : {"args.json", "metrics.jsonl", "checkpoint-last.safetensors", "checkpoint-best.safetensors",
                        "model.safetensors"})
    CHECK(fs::exists(run / f));

  EvalOptions eo;
  eo.weights = (run / "model.safetensors").string();
  eo.data = o.data;
  eo.save_logits = (tmp.path / "logits.safetensors").string();
  const EvalReport rep = run_eval(eo);
  CHECK(rep.accuracy == r.final_accuracy);
  for (double a : rep.per_class_accuracy) CHECK(a == 1.0);

  // The weights file and the last checkpoint hold the same model: identical logits.
  auto from_weights = build_model(load_model_file((run / "model.safetensors").string()));
  auto from_ckpt = build_model(load_model_file((run / "checkpoint-last.safetensors").string()));
  from_weights->eval();
  from_ckpt->eval();
  NoGradGuard no_grad;
  Generator g(5);
  Tensor x = randn({3, 3, 32, 32}, g);
  CHECK(from_weights->forward(x).to_vector() == from_ckpt->forward(x).to_vector());
}

TEST_CASE("a run stopped mid-epoch and resumed gives the uninterrupted run's losses", "[train]") {
  testing::TempDir tmp("resume");
  testing::write_synthetic_cifar(tmp.path / "data", 40, 10);
  auto options = [&](const std::string& name) {
    TrainOptions o = tiny_options(tmp.path / "data", tmp.path / "runs");
    o.name = name;
    o.model_overrides = {"depth=2", "dim=32", "heads=2", "mlp_dim=64"};
    o.epochs = 3;
    o.batch_size = 8;  // 5 steps per epoch
    o.log_every = 1;
    o.drop_path = 0.2;  // the RNG state must be restored too
    o.dropout = 0.1;
    o.augment = "basic";
    o.mixup = 0.2;
    return o;
  };
  const TrainResult full = train(options("full"));
  TrainOptions first = options("split");
  first.stop_after_steps = 7;  // epoch 2, step 2
  const TrainResult stopped = train(first);
  CHECK(stopped.interrupted);
  TrainOptions second = options("split");
  second.resume = (fs::path(stopped.run_dir)).string();
  const TrainResult resumed = train(second);
  CHECK_FALSE(resumed.interrupted);

  const auto a = step_losses(full.run_dir), b = step_losses(resumed.run_dir);
  REQUIRE(a.size() == 15);
  CHECK(a == b);  // bit for bit
  CHECK(full.final_accuracy == resumed.final_accuracy);
}

TEST_CASE("bad training input gives errors that name the problem", "[train]") {
  testing::TempDir tmp("errors");
  TrainOptions o = tiny_options(tmp.path / "missing", tmp.path / "runs");
  CHECK_THROWS_WITH(train(o), Catch::Contains("--data"));
  testing::write_synthetic_cifar(tmp.path / "data", 10, 10);
  o = tiny_options(tmp.path / "data", tmp.path / "runs");
  o.model_overrides = {"depth"};
  CHECK_THROWS_WITH(train(o), "[--model] expected key=value, got 'depth'");
  o.model_overrides = {"patch_size=5"};
  CHECK_THROWS_WITH(train(o), Catch::Contains("not a multiple of patch_size 5"));
  EvalOptions eo;
  eo.weights = (tmp.path / "data" / "cifar-10-batches-bin" / "test_batch.bin").string();
  CHECK_THROWS_WITH(run_eval(eo), Catch::Contains("test_batch.bin"));
}
