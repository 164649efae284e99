// The flags of `vit train`, in the style of timm's train.py, and their defaults.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pw::app {

// The defaults are the recipe of `make train`: a nano ViT that reaches its best accuracy within
// 40 minutes on two cores (about 3.5 minutes an epoch there).
struct TrainOptions {
  // model
  std::string preset = "nano";
  std::vector<std::string> model;  // --model key=value overrides, e.g. depth=4
  double dropout = 0.0;
  double drop_path = 0.0;
  // optimisation
  std::int64_t epochs = 8;
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
  // model EMA (timm's flags): an average of the weights, evaluated beside them (optim/ema.h)
  bool model_ema = false;
  double model_ema_decay = 0.9998;
  bool model_ema_warmup = false;
  // data
  std::string augment = "basic";
  std::int64_t randaugment_n = 2;
  std::int64_t randaugment_m = 9;
  double mixup = 0.0;
  double cutmix = 0.0;
  std::int64_t cutout = 0;
  // The data set (data/datasets.h): cifar10, cifar100 (--cifar100-labels fine or coarse) or
  // folder (an image folder at --data; data/image_folder.h).
  std::string dataset = "cifar10";
  std::string data;
  std::string cifar100_labels = "fine";
  // The side images are trained at; 0: the model's image_size (the preset's, the --init
  // file's, or --model image_size=).
  std::int64_t img_size = 0;
  // Image folders: the fraction of train/ held out as val when there is no val/ folder, the
  // evaluation centre crop (timm's crop_pct; CIFAR uses 1), RandomResizedCrop's scale and
  // ratio ranges, and the memory budget of decoded images in MiB.
  double val_split = 0.0;
  double crop_pct = 0.875;
  std::vector<double> scale{0.08, 1.0};
  std::vector<double> ratio{3.0 / 4.0, 4.0 / 3.0};
  std::int64_t cache_mb = 2048;
  std::int64_t limit_train = 0;
  std::int64_t limit_test = 0;
  bool no_shuffle = false;
  std::int64_t workers = 1;
  // run
  std::uint64_t seed = 42;
  std::int64_t threads = 0;
  // "auto", "fp32" or "bf16" (apps/precision.h); the run resolves auto and saves what it used.
  std::string precision = "auto";
  std::string output = "runs";
  std::string name;
  std::string resume;
  std::string init;
  bool reset_head = false;  // with --init: a fresh head even when its size fits the data
  std::int64_t eval_every = 1;
  std::string tta = "none";  // test-time augmentation of the evaluation: none or flip
  // A wall-time budget ("30m", "1h30m", ...; apps/train/budget.h) that sizes the run instead
  // of --epochs; "" or "none" trains for --epochs.
  std::string time_budget;
  // The recipe (apps/train/recipes.h) whose values are the defaults of this run; "" none.
  std::string recipe;
  std::int64_t log_every = 20;
  bool progress = true;
  std::int64_t stop_after_steps = 0;  // testing aid: stop (with a checkpoint) after N steps
  // Under mpirun: seconds a collective may wait for the other ranks before the job ends naming
  // those that did not arrive (0: wait forever).
  double dist_timeout = 300;
};

// args.json: every field under its own name (flags are the names with '-' for '_').
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(
    TrainOptions, preset, model, dropout, drop_path, epochs, batch_size, opt, lr, min_lr,
    weight_decay, momentum, sched, warmup_epochs, warmup_lr, decay_milestones, decay_rate,
    decay_epochs, patience_epochs, smoothing, clip_grad, model_ema, model_ema_decay,
    model_ema_warmup, augment, randaugment_n, randaugment_m, mixup, cutmix, cutout, dataset, data,
    cifar100_labels, img_size, val_split, crop_pct, scale, ratio, cache_mb, limit_train, limit_test,
    no_shuffle, workers, seed, threads, precision, output, name, resume, init, reset_head,
    eval_every, tta, time_budget, recipe, log_every, progress, stop_after_steps, dist_timeout)

// Declares every flag of `vit train` on `app` with its default in the help text.
void add_train_flags(CLI::App& app, TrainOptions& o);

// Checks the values that the flags' own validators check, for options built in code; errors
// name the flag.
void validate_train_options(const TrainOptions& o);

}  // namespace pw::app
