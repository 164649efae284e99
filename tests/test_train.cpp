// End to end: `vit train` on synthetic CIFAR-format files — overfitting, save/load/eval
// agreement, exact resume, and the errors of bad input.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/commands/eval.h"
#include "apps/evaluate.h"
#include "apps/train/recipes.h"
#include "apps/train/trainer.h"
#include "apps/weights.h"
#include "cifar_fixture.h"
#include "core/autograd.h"
#include "io/file_io.h"
#include "ops/loss.h"
#include "optim/adam.h"

using namespace pw;
using namespace pw::app;
using pw::testing::records;
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

// name -> values, for comparing tensor lists regardless of order.
std::map<std::string, std::vector<float>> by_name(const NamedTensors& tensors) {
  std::map<std::string, std::vector<float>> out;
  for (auto& [n, t] : tensors) out[n] = t.to_vector();
  return out;
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

TEST_CASE("a run with model EMA resumes exactly, EMA metrics and averages included",
          "[train][ema]") {
  testing::TempDir tmp("ema-resume");
  testing::write_synthetic_cifar(tmp.path / "data", 40, 10);
  auto options = [&](const std::string& name) {
    TrainOptions o = tiny_options(tmp.path / "data", tmp.path / "runs");
    o.name = name;
    o.model = {"depth=2", "dim=32", "heads=2", "mlp_dim=64"};
    o.epochs = 3;
    o.batch_size = 8;  // 5 steps per epoch
    o.log_every = 1;
    o.dropout = 0.1;
    o.model_ema = true;
    o.model_ema_decay = 0.9;
    o.model_ema_warmup = true;
    o.tta = "flip";
    return o;
  };
  const TrainResult full = train(options("full"));
  TrainOptions first = options("split");
  first.stop_after_steps = 7;  // epoch 2, step 2
  REQUIRE(train(first).interrupted);
  TrainOptions second = options("split");
  second.resume = (tmp.path / "runs" / "split").string();
  const TrainResult resumed = train(second);
  REQUIRE_FALSE(resumed.interrupted);

  CHECK(step_losses(full.run_dir) == step_losses(resumed.run_dir));
  const auto a = records(full.run_dir, "epoch"), b = records(resumed.run_dir, "epoch");
  REQUIRE(a.size() == 3);
  REQUIRE(b.size() == 3);
  for (std::size_t e = 0; e < a.size(); ++e) {
    for (const char* key :
         {"test_loss", "test_accuracy", "test_loss_ema", "test_accuracy_ema", "train_loss", "lr"}) {
      INFO("epoch " << e + 1 << " " << key);
      REQUIRE(a[e].contains(key));
      CHECK(a[e][key] == b[e][key]);  // bit for bit
    }
    // Wall time since the start of the run, over both invocations of the split run.
    CHECK(a[e]["elapsed_seconds"].get<double>() > 0);
    if (e > 0)
      CHECK(b[e]["elapsed_seconds"].get<double>() > b[e - 1]["elapsed_seconds"].get<double>());
  }
  // The averages themselves, and their update count, agree bit for bit.
  const LoadedModel ca =
      load_model_file((fs::path(full.run_dir) / "checkpoint-last.safetensors").string());
  const LoadedModel cb =
      load_model_file((fs::path(resumed.run_dir) / "checkpoint-last.safetensors").string());
  REQUIRE(ca.ema.size() == ca.weights.size());
  CHECK(ca.ema_state["updates"] == 15);
  CHECK(cb.ema_state["updates"] == 15);
  CHECK(by_name(ca.ema) == by_name(cb.ema));
  CHECK(by_name(ca.ema) != by_name(ca.weights));
  CHECK(fs::exists(fs::path(full.run_dir) / "checkpoint-best.safetensors"));
  CHECK(load_model_file((fs::path(full.run_dir) / "checkpoint-best.safetensors").string())
            .ema.size() == ca.weights.size());

  // model.safetensors holds whichever weights scored better at the end, and the run says which.
  const auto summary = records(full.run_dir, "summary");
  REQUIRE(summary.size() == 1);
  const bool ema_better =
      summary[0]["final_accuracy_ema"].get<double>() > summary[0]["final_accuracy"].get<double>();
  CHECK(summary[0]["model_weights"] == (ema_better ? "ema" : "raw"));
  CHECK(full.model_weights == (ema_better ? "ema" : "raw"));
  const LoadedModel saved =
      load_model_file((fs::path(full.run_dir) / "model.safetensors").string());
  CHECK(by_name(saved.weights) == by_name(ema_better ? ca.ema : ca.weights));
  CHECK(records(resumed.run_dir, "summary").size() == 1);
}

TEST_CASE("model.safetensors gets the EMA weights when they score better", "[train][ema]") {
  // A trained model is the starting point of a run whose learning rate wrecks the weights;
  // with decay 1 the average stays at the starting weights, so it scores better.
  testing::TempDir tmp("ema-wins");
  testing::write_synthetic_cifar(tmp.path / "data", 32, 32, 1, /*test_equals_train=*/true);
  TrainOptions o = tiny_options(tmp.path / "data", tmp.path / "runs");
  o.name = "good";
  o.model = {"depth=1"};
  o.epochs = 10;
  o.batch_size = 8;
  o.lr = 3e-3;
  o.augment = "none";
  o.smoothing = 0;
  o.weight_decay = 0;
  o.eval_every = 10;
  const TrainResult good = train(o);
  REQUIRE(good.final_accuracy >= 0.75);
  CHECK(good.model_weights == "raw");  // no EMA: always the raw weights

  o.name = "wrecked";
  o.init = (fs::path(good.run_dir) / "model.safetensors").string();
  o.epochs = 2;
  o.lr = 0.5;
  o.sched = "constant";
  o.warmup_epochs = 0;
  o.model_ema = true;
  o.model_ema_decay = 1.0;
  o.eval_every = 1;
  const TrainResult wrecked = train(o);
  CHECK(wrecked.final_accuracy_ema == good.final_accuracy);  // the starting weights
  REQUIRE(wrecked.final_accuracy < wrecked.final_accuracy_ema);
  CHECK(wrecked.model_weights == "ema");
  CHECK(records(wrecked.run_dir, "summary").at(0)["model_weights"] == "ema");
  const auto saved = load_model_file((fs::path(wrecked.run_dir) / "model.safetensors").string());
  CHECK(by_name(saved.weights) == by_name(load_model_file(o.init).weights));
  // The best checkpoint counts the EMA's accuracy too.
  CHECK(wrecked.best_accuracy == good.final_accuracy);

  // Resuming the finished run trains nothing and keeps the choice (from its last evaluation).
  TrainOptions again = o;
  again.init.clear();
  again.resume = wrecked.run_dir;
  const TrainResult done = train(again);
  CHECK(done.model_weights == "ema");
  CHECK(done.final_accuracy == wrecked.final_accuracy);
  const auto kept = load_model_file((fs::path(wrecked.run_dir) / "model.safetensors").string());
  CHECK(by_name(kept.weights) == by_name(saved.weights));
  CHECK(records(wrecked.run_dir, "summary").size() == 1);
}

TEST_CASE("flip TTA averages the logits of a batch and of its mirror", "[train][tta]") {
  models::ViTConfig cfg = models::vit_preset("nano");
  cfg.depth = 1;
  cfg.dim = 32;
  cfg.heads = 2;
  cfg.mlp_dim = 64;
  Generator g(11);
  models::VisionTransformer model(cfg, g);
  model.eval();
  NoGradGuard no_grad;
  Tensor x = randn({3, 3, 32, 32}, g);
  // The mirror, built element by element.
  std::vector<float> v = x.to_vector(), m(v.size());
  for (std::size_t row = 0; row < v.size() / 32; ++row)
    for (std::size_t w = 0; w < 32; ++w) m[row * 32 + w] = v[row * 32 + 31 - w];
  const Tensor mirrored = from_vector(m, {3, 3, 32, 32});
  CHECK(hflip_images(x).to_vector() == m);

  const auto plain = model.forward(x).to_vector(), flipped = model.forward(mirrored).to_vector();
  const auto tta = predict_logits(model, x, Tta::Flip).to_vector();
  REQUIRE(tta.size() == plain.size());
  double differs = 0;
  for (std::size_t i = 0; i < tta.size(); ++i) {
    CHECK(tta[i] == Approx((plain[i] + flipped[i]) / 2).margin(1e-6));
    differs = std::max(differs, std::abs(double(plain[i]) - double(flipped[i])));
  }
  CHECK(differs > 1e-3);  // the mirror changes the logits, so the average is not the plain one
  CHECK(predict_logits(model, x, Tta::None).to_vector() == plain);
  CHECK(parse_tta("flip") == Tta::Flip);
  CHECK_THROWS_WITH(parse_tta("mirror"), "[--tta] expected none or flip, got 'mirror'");
}

TEST_CASE("a recipe sets defaults, explicit flags override it, unknown names are errors",
          "[train][recipe]") {
  const Recipe recipe{"test",
                      "for this test",
                      {"--lr=0.005", "--batch-size=64", "--model=depth=2", "--model=dim=96",
                       "--model-ema", "--model-ema-decay=0.99", "--time-budget=2m", "--tta=flip"}};
  CLI::App app;
  TrainOptions o;
  add_train_flags(app, o);
  app.parse("--lr 0.01 --model dim=64 --epochs 3", false);
  apply_recipe(o, app, recipe);
  CHECK(o.recipe == "test");
  CHECK(o.lr == 0.01);  // given: the command line wins
  CHECK(o.epochs == 3);
  CHECK(o.batch_size == 64);  // from the recipe
  CHECK(o.model_ema);
  CHECK(o.model_ema_decay == 0.99);
  CHECK(o.time_budget == "2m");
  CHECK(o.tta == "flip");
  // --model entries: the recipe's first, the command line's after them (its keys win).
  CHECK(o.model == std::vector<std::string>{"depth=2", "dim=96", "dim=64"});
  CHECK(models::apply_overrides(models::vit_preset("nano"), o.model).dim == 64);
  CHECK(o.weight_decay == TrainOptions{}.weight_decay);  // in neither: the flag's default
  // args.json holds the resolved values and the name, so resuming needs no recipe.
  const nlohmann::json saved = o;
  CHECK(saved["recipe"] == "test");
  CHECK(saved["batch_size"] == 64);

  CHECK_THROWS_WITH(find_recipe("nope"),
                    Catch::Contains("unknown recipe 'nope'") && Catch::Contains("default, long"));
  CLI::App app2;
  TrainOptions o2;
  add_train_flags(app2, o2);
  CHECK_THROWS_WITH(app2.parse("--recipe nope", false), Catch::Contains("unknown recipe 'nope'"));
  CHECK_THROWS_WITH(apply_recipe(o2, app2, Recipe{"bad", "", {"--no-such-flag=1"}}),
                    Catch::Contains("recipe 'bad'"));
  CHECK_THROWS_WITH(apply_recipe(o2, app2, Recipe{"bad", "", {"--lr=-1"}}),
                    Catch::Contains("recipe 'bad'") && Catch::Contains("--lr"));
  CHECK_THROWS_WITH(apply_recipe(o2, app2, Recipe{"bad", "", {"--resume=runs/x"}}),
                    Catch::Contains("--resume cannot be part of a recipe"));
  // The built-in recipes are valid flag lists.
  for (const Recipe& r : recipes()) {
    INFO(r.name);
    CLI::App a;
    TrainOptions t;
    add_train_flags(a, t);
    a.parse("", false);
    CHECK_NOTHROW(apply_recipe(t, a, find_recipe(r.name)));
    CHECK(t.recipe == r.name);
    CHECK_NOTHROW(models::apply_overrides(models::vit_preset(t.preset), t.model).validate());
  }
}
