// End to end: `vit train` on synthetic CIFAR-format files — overfitting, save/load/eval
// agreement, exact resume, and the errors of bad input.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/commands/eval.h"
#include "apps/train/trainer.h"
#include "apps/weights.h"
#include "cifar_fixture.h"
#include "core/autograd.h"
#include "core/file_io.h"
#include "ops/nn.h"
#include "optim/adam.h"

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
  o.model = {"depth=2"};  // nano's width and heads, fewer blocks: a fast test
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
  for (const char* f : {"args.json", "metrics.jsonl", "checkpoint-last.safetensors",
                        "checkpoint-best.safetensors", "model.safetensors"})
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
    o.model = {"depth=2", "dim=32", "heads=2", "mlp_dim=64"};
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

TEST_CASE("a bf16 run saves its precision, resumes with it and repeats its losses",
          "[train][bf16]") {
  testing::TempDir tmp("bf16");
  testing::write_synthetic_cifar(tmp.path / "data", 24, 8);
  auto options = [&](const std::string& name) {
    TrainOptions o = tiny_options(tmp.path / "data", tmp.path / "runs");
    o.name = name;
    o.model = {"depth=2", "dim=32", "heads=2", "mlp_dim=64"};
    o.epochs = 2;
    o.batch_size = 8;  // 3 steps per epoch
    o.log_every = 1;
    o.dropout = 0.1;
    o.precision = "bf16";
    return o;
  };
  const TrainResult full = train(options("full"));
  TrainOptions first = options("split");
  first.stop_after_steps = 4;
  const TrainResult stopped = train(first);
  REQUIRE(stopped.interrupted);
  // args.json and the checkpoint both say bf16.
  const auto args = nlohmann::json::parse(std::ifstream(fs::path(stopped.run_dir) / "args.json"));
  CHECK(args["precision"] == "bf16");
  const LoadedModel ckpt =
      load_model_file((fs::path(stopped.run_dir) / "checkpoint-last.safetensors").string());
  CHECK(ckpt.state.precision == "bf16");
  // --resume without --precision keeps the saved one (the default would be auto).
  CLI::App app;
  TrainOptions cli;
  add_train_flags(app, cli);
  app.parse("--resume " + stopped.run_dir, false);
  const TrainOptions merged = merge_resume_options(cli, app);
  CHECK(merged.precision == "bf16");
  const TrainResult resumed = train(merged);
  CHECK_FALSE(resumed.interrupted);
  const auto a = step_losses(full.run_dir), b = step_losses(resumed.run_dir);
  REQUIRE(a.size() == 6);
  CHECK(a == b);  // bf16 is deterministic too: bit for bit
}

TEST_CASE("bad training input gives errors that name the problem", "[train]") {
  testing::TempDir tmp("errors");
  TrainOptions o = tiny_options(tmp.path / "missing", tmp.path / "runs");
  CHECK_THROWS_WITH(train(o), Catch::Contains("--data"));
  testing::write_synthetic_cifar(tmp.path / "data", 10, 10);
  o = tiny_options(tmp.path / "data", tmp.path / "runs");
  o.model = {"depth"};
  CHECK_THROWS_WITH(train(o), "[--model] expected key=value, got 'depth'");
  o.model = {"patch_size=5"};
  CHECK_THROWS_WITH(train(o), Catch::Contains("not a multiple of patch_size 5"));
  EvalOptions eo;
  eo.weights = (tmp.path / "data" / "cifar-10-batches-bin" / "test_batch.bin").string();
  CHECK_THROWS_WITH(run_eval(eo), Catch::Contains("test_batch.bin"));
}

TEST_CASE("a non-finite loss stops the run and leaves the last checkpoint untouched", "[train]") {
  testing::TempDir tmp("nan");
  testing::write_synthetic_cifar(tmp.path / "data", 16, 8);
  TrainOptions o = tiny_options(tmp.path / "data", tmp.path / "runs");
  o.model = {"depth=1", "dim=16", "heads=2", "mlp_dim=32"};
  o.batch_size = 8;
  o.epochs = 1;
  const TrainResult first = train(o);
  const fs::path ckpt = fs::path(first.run_dir) / "checkpoint-last.safetensors";
  const auto before = pw::read_file(ckpt.string());
  // A new run in the same folder whose learning rate makes the weights, then the loss, blow up.
  o.opt = "sgd";
  o.lr = 1e30;
  o.warmup_epochs = 0;
  o.sched = "constant";
  CHECK_THROWS_WITH(train(o), Catch::Contains("the loss is") && Catch::Contains("stopping") &&
                                  Catch::Contains(ckpt.string()));
  CHECK(pw::read_file(ckpt.string()) == before);
}

TEST_CASE("checkpoints round-trip the model, optimizer and loop state exactly", "[train]") {
  testing::TempDir tmp("ckpt");
  models::ViTConfig cfg = models::vit_preset("nano");
  cfg.depth = 1;
  Generator g(3);
  models::VisionTransformer model(cfg, g);
  optim::AdamWOptions ao;
  optim::AdamW opt(model.parameters(), ao);
  // One real step so that the optimizer has state to save.
  Tensor loss = cross_entropy(model.forward(randn({2, 3, 32, 32}, g)), tensor({1, 7}, {2}));
  loss.backward();
  opt.step();
  TrainState st;
  st.epoch = 3;
  st.batch = 17;
  st.global_step = 1234;
  st.best_accuracy = 0.625;
  st.best_epoch = 2;
  st.rng = Generator(99).state();
  st.scheduler = {{"last_epoch", 1234}};
  ModelInfo info{cfg, {}, {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}};
  const auto path = (tmp.path / "ckpt.safetensors").string();
  save_checkpoint(path, model, info, opt, st);

  const LoadedModel back = load_model_file(path);
  CHECK(back.is_checkpoint);
  CHECK(back.state.to_json() == st.to_json());
  CHECK(models::to_json(back.info.config) == models::to_json(cfg));
  CHECK(back.info.classes == info.classes);
  // The file orders tensors by dtype and name; compare by name.
  auto same = [](const NamedTensors& a, const NamedTensors& b) {
    std::map<std::string, std::vector<float>> ma, mb;
    for (auto& [n, t] : a) ma[n] = t.to_vector();
    for (auto& [n, t] : b) mb[n] = t.to_vector();
    return ma.size() == a.size() && ma == mb;
  };
  CHECK(same(back.weights, model.state_dict()));
  const optim::OptimizerState os = opt.state_dict();
  CHECK(back.optimizer.scalars == os.scalars);
  CHECK(same(back.optimizer.tensors, os.tensors));
  CHECK(os.tensors.size() == 2 * model.parameters().size());  // exp_avg and exp_avg_sq
}
