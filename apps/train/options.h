// The flags of `vit train`, in the style of timm's train.py, and their defaults.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pw::app {

struct TrainOptions {
  // model
  std::string preset = "nano";
  std::vector<std::string> model_overrides;  // --model key=value, e.g. depth=4
  double dropout = 0.0;
  double drop_path = 0.1;
  // optimisation
  std::int64_t epochs = 10;
  std::int64_t batch_size = 128;
  std::string opt = "adamw";
  double lr = 1e-3;
  double min_lr = 1e-5;
  double weight_decay = 0.05;
  double momentum = 0.9;
  std::string sched = "cosine";
  double warmup_epochs = 1.0;
  double warmup_lr = 1e-5;
  std::vector<std::int64_t> decay_milestones{30, 60};
  double decay_rate = 0.1;
  std::int64_t decay_epochs = 30;
  std::int64_t patience_epochs = 5;
  double smoothing = 0.1;
  double clip_grad = 0.0;
  // data
  std::string augment = "basic";
  std::int64_t randaugment_n = 2;
  std::int64_t randaugment_m = 9;
  double mixup = 0.0;
  double cutmix = 0.0;
  std::int64_t cutout = 0;
  std::string data;
  std::int64_t limit_train = 0;
  std::int64_t limit_test = 0;
  bool no_shuffle = false;
  std::int64_t workers = 1;
  // run
  std::uint64_t seed = 42;
  std::int64_t threads = 0;
  std::string output = "runs";
  std::string name;
  std::string resume;
  std::string init;
  std::int64_t eval_every = 1;
  std::int64_t log_every = 20;
  bool progress = true;
  std::int64_t stop_after_steps = 0;  // testing aid: stop (with a checkpoint) after N steps

  nlohmann::json to_json() const;
};

// Declares every flag of `vit train` on `app` with its default in the help text.
void add_train_flags(CLI::App& app, TrainOptions& o);

}  // namespace pw::app
