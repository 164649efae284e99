#include "apps/train/options.h"

#include <algorithm>

#include "apps/evaluate.h"
#include "apps/precision.h"
#include "apps/train/budget.h"
#include "apps/train/recipes.h"
#include "core/error.h"
#include "data/datasets.h"
#include "models/vit.h"

namespace pw::app {

namespace {

// Upper bounds of the counts: generous, but finite, so that nothing computed from them
// (epochs x steps, a schedule's length) can overflow.
constexpr std::int64_t kMaxEpochs = 100'000;
constexpr std::int64_t kMaxCount = 1'000'000'000;
// Real-valued options (rates, decays, norms): non-negative and at most this; inf is refused.
constexpr double kMaxReal = 1e30;
// Waits (--dist-timeout): a year.
constexpr double kMaxSeconds = 365.0 * 24 * 3600;
// --cache-mb: 16 TiB, far beyond any machine, and small enough to count in bytes.
constexpr std::int64_t kMaxCacheMb = std::int64_t{1} << 24;

}  // namespace

void add_train_flags(CLI::App& app, TrainOptions& o) {
  app.option_defaults()->always_capture_default();
  const CLI::Range finite(0.0, kMaxReal);
  app.add_option("--recipe", o.recipe,
                 "Take the flag values of a named recipe (listed below) as defaults")
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            try {
              find_recipe(name);
              return {};
            } catch (const Error& e) {
              return e.what();
            }
          },
          "RECIPE"));
  app.add_option("--preset", o.preset, "Model preset")
      ->check(CLI::IsMember({"nano", "lite", "small"}));
  app.add_option(
      "--model", o.model,
      "Override a model config field, key=value (e.g. depth=4, pool=mean, heads=8); repeatable");
  app.add_option("--dropout", o.dropout, "Dropout after MLP layers and before the head")
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--drop-path", o.drop_path, "Stochastic depth rate of the last block")
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--epochs", o.epochs, "Number of epochs (unused with --time-budget)")
      ->check(CLI::Range(std::int64_t{1}, kMaxEpochs));
  app.add_option("-b,--batch-size", o.batch_size, "Batch size")->check(CLI::Range(1, 65536));
  app.add_option("--opt", o.opt, "Optimizer")->check(CLI::IsMember({"adamw", "adam", "sgd"}));
  // Zero is allowed, as PyTorch allows it (a frozen run: the tests fine-tune with lr 0).
  app.add_option("--lr", o.lr, "Peak learning rate")->check(CLI::NonNegativeNumber)->check(finite);
  app.add_option("--min-lr", o.min_lr, "Lowest learning rate of the cosine schedule")
      ->check(finite);
  app.add_option("--weight-decay", o.weight_decay,
                 "Weight decay (not applied to biases, norms, pos_embed, cls_token)")
      ->check(finite);
  app.add_option("--momentum", o.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0));
  app.add_option("--sched", o.sched, "Learning-rate schedule")
      ->check(CLI::IsMember({"cosine", "step", "multistep", "onecycle", "plateau", "constant"}));
  app.add_option("--warmup-epochs", o.warmup_epochs,
                 "Linear warmup length in epochs (cosine, step, multistep, constant)")
      ->check(CLI::Range(0.0, static_cast<double>(kMaxEpochs)));
  app.add_option("--warmup-lr", o.warmup_lr, "Learning rate at the start of the warmup")
      ->check(finite);
  app.add_option("--decay-epochs", o.decay_epochs, "StepLR period in epochs")
      ->check(CLI::Range(std::int64_t{1}, kMaxEpochs));
  app.add_option("--decay-milestones", o.decay_milestones, "MultiStepLR milestones in epochs")
      ->check(CLI::Range(std::int64_t{0}, kMaxEpochs));
  app.add_option("--decay-rate", o.decay_rate,
                 "Decay factor of step, multistep and plateau schedules")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--patience-epochs", o.patience_epochs, "ReduceLROnPlateau patience in epochs")
      ->check(CLI::Range(std::int64_t{0}, kMaxEpochs));
  app.add_option("--smoothing", o.smoothing, "Label smoothing")->check(CLI::Range(0.0, 0.99));
  app.add_option("--clip-grad", o.clip_grad, "Clip gradients to this global norm (0: off)")
      ->check(finite);
  app.add_flag("--model-ema", o.model_ema,
               "Keep an exponential moving average of the weights, evaluated beside them; "
               "model.safetensors gets the better of the two");
  app.add_option("--model-ema-decay", o.model_ema_decay,
                 "Model EMA decay: ema = decay * ema + (1 - decay) * weights after every step")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--model-ema-warmup", o.model_ema_warmup,
               "Model EMA decay warmup: step n uses min(decay, (1 + n) / (10 + n))");
  app.add_option("--augment", o.augment, "Augmentation")
      ->check(CLI::IsMember({"none", "basic", "randaugment", "autoaugment"}));
  app.add_option("--randaugment-n", o.randaugment_n, "RandAugment: ops per image")
      ->check(CLI::Range(0, 64));
  app.add_option("--randaugment-m", o.randaugment_m, "RandAugment: magnitude (0-30)")
      ->check(CLI::Range(0, 30));
  app.add_option("--mixup", o.mixup, "Mixup alpha (0: off)")->check(CLI::Range(0.0, 1000.0));
  app.add_option("--cutmix", o.cutmix, "CutMix alpha (0: off)")->check(CLI::Range(0.0, 1000.0));
  app.add_option("--cutout", o.cutout, "Cutout square side in pixels (0: off)")
      ->check(CLI::Range(0, 32));
  app.add_option("--dataset", o.dataset,
                 "Data set: cifar10, cifar100, or folder (an image folder at --data)")
      ->check(CLI::IsMember(data::dataset_names()));
  app.add_option("--data", o.data,
                 "CIFAR folder or .tar.gz (default: $CIFAR10_DIR or $CIFAR100_DIR, data/, "
                 "../shared/data/), or the image folder ROOT holding train/<class>/ and "
                 "val/<class>/");
  app.add_option("--cifar100-labels", o.cifar100_labels,
                 "CIFAR-100 labels: fine (100 classes) or coarse (20 superclasses)")
      ->check(CLI::IsMember({"fine", "coarse"}));
  app.add_option("--img-size", o.img_size,
                 "Image side to train at (0: the model's image_size); images are resized to it")
      ->check(CLI::Range(std::int64_t{0}, models::ViTLimits::image_size));
  app.add_option("--val-split", o.val_split,
                 "Image folders without val/: hold out this fraction of each training class "
                 "(drawn by --seed) for evaluation")
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--crop-pct", o.crop_pct,
                 "Image folders: evaluation resizes the shorter side to img-size / crop-pct, "
                 "then takes the centre img-size square (CIFAR: 1)")
      ->check(CLI::Range(0.05, 1.0));
  app.add_option("--scale", o.scale,
                 "Image folders: RandomResizedCrop's range of the crop's area fraction")
      ->expected(2)
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--ratio", o.ratio,
                 "Image folders: RandomResizedCrop's range of the crop's aspect ratio (w / h)")
      ->expected(2)
      ->check(CLI::PositiveNumber)
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--cache-mb", o.cache_mb,
                 "Image folders: keep decoded images (3 bytes a pixel, at their file's size) in "
                 "memory up to this many MiB; a split over it is decoded by the loader's workers "
                 "each epoch")
      ->check(CLI::Range(std::int64_t{0}, kMaxCacheMb));
  app.add_option("--limit-train", o.limit_train, "Use only the first N training images (0: all)")
      ->check(CLI::Range(std::int64_t{0}, kMaxCount));
  app.add_option("--limit-test", o.limit_test, "Use only the first N test images (0: all)")
      ->check(CLI::Range(std::int64_t{0}, kMaxCount));
  app.add_flag("--no-shuffle", o.no_shuffle, "Keep the training images in file order");
  app.add_option("--workers", o.workers, "Data-loading threads")->check(CLI::Range(1, 16));
  app.add_option("--seed", o.seed,
                 "Random seed (initialisation, data order, augmentation, dropout)");
  app.add_option("--threads", o.threads, "Compute threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  add_precision_flag(app, o.precision);
  app.add_option("--output", o.output, "Folder that receives the run folder");
  app.add_option("--name", o.name, "Run folder name (default: <preset>-<date>-<time>)");
  app.add_option("--resume", o.resume, "Resume from a run folder or checkpoint file");
  app.add_option("--init", o.init,
                 "Fine-tune: start from the weights (and architecture) of a .safetensors file; "
                 "a position embedding of another grid is resized, a head of another class "
                 "count replaced by a fresh one");
  app.add_flag("--reset-head", o.reset_head,
               "With --init: start the head fresh even when its class count fits the data");
  app.add_option("--eval-every", o.eval_every, "Evaluate on the test set every N epochs")
      ->check(CLI::Range(std::int64_t{1}, kMaxEpochs));
  app.add_option("--tta", o.tta,
                 "Test-time augmentation of the evaluation: flip averages the logits of each "
                 "image and its mirror")
      ->check(CLI::IsMember({"none", "flip"}));
  app.add_option("--time-budget", o.time_budget,
                 "Train for this wall time instead of --epochs (90s, 30m, 2.5h, 1h30m or "
                 "seconds; none: no budget), evaluation included; the schedule is sized to it")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            try {
              parse_time_budget(text);
              return {};
            } catch (const Error& e) {
              return e.what();
            }
          },
          "DURATION"));
  app.add_option("--log-every", o.log_every, "Log training metrics every N steps")
      ->check(CLI::Range(std::int64_t{1}, kMaxCount));
  app.add_flag("!--no-progress", o.progress, "Plain log lines instead of a progress bar");
  app.add_option("--stop-after-steps", o.stop_after_steps,
                 "Stop with a checkpoint after N steps (for testing resume)")
      ->check(CLI::Range(std::int64_t{0}, kMaxCount));
  app.add_option("--dist-timeout", o.dist_timeout,
                 "Under mpirun: seconds a collective waits for the other ranks before the job "
                 "ends, naming those that did not arrive (0: forever)")
      ->check(CLI::Range(0.0, kMaxSeconds));
}

void validate_train_options(const TrainOptions& o) {
  // Every value goes through its flag's own validators: the options are written back as a
  // command line and parsed by a fresh `vit train`, so that options from code or from a
  // resumed run's args.json meet exactly the checks of the command line.
  CLI::App app;
  TrainOptions parsed;
  add_train_flags(app, parsed);
  std::vector<std::string> args;
  const nlohmann::json j = o;
  for (const auto& [key, value] : j.items()) {
    std::string flag = "--" + key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    // Booleans are flags with nothing to check (their JSON type was checked when read), and an
    // empty string is an unset option ("" recipe, name, budget).
    const CLI::Option* opt = app.get_option_no_throw(flag);
    if (!opt || value.is_boolean()) continue;
    if (value.is_string() && value.get_ref<const std::string&>().empty()) continue;
    const auto text = [](const nlohmann::json& v) {
      return v.is_string() ? v.get<std::string>() : v.dump();
    };
    if (value.is_array()) {
      // The --flag=value form, so that a negative value is read as one and not as a flag: one
      // value an occurrence, or all in one for a flag of a fixed count (--scale MIN MAX).
      const bool together = opt->get_items_expected_min() > 1;
      for (std::size_t i = 0; i < value.size(); ++i)
        args.push_back(together && i > 0 ? text(value[i]) : flag + "=" + text(value[i]));
    } else {
      args.push_back(flag + "=" + text(value));
    }
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes a vector of arguments last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    fail("[options] {}", e.what());
  }
  PW_CHECK(o.model_ema_decay >= 0.0 && o.model_ema_decay <= 1.0,
           "[--model-ema-decay] must be in [0, 1], got {}", o.model_ema_decay);
  parse_tta(o.tta, "--tta");
  const bool budget = parse_time_budget(o.time_budget).has_value();
  PW_CHECK(o.epochs > 0 || budget, "[--epochs] must be positive, got {}", o.epochs);
  PW_CHECK(o.batch_size > 0, "[--batch-size] must be positive, got {}", o.batch_size);
  PW_CHECK(o.eval_every > 0, "[--eval-every] must be positive, got {}", o.eval_every);
  const auto& names = data::dataset_names();
  PW_CHECK(std::find(names.begin(), names.end(), o.dataset) != names.end(),
           "[--dataset] expected one of {}, got '{}'", fmt::join(names, ", "), o.dataset);
  data::parse_cifar100_labels(o.cifar100_labels, "--cifar100-labels");
  PW_CHECK(o.img_size >= 0, "[--img-size] must be positive (or 0: the model's), got {}",
           o.img_size);
  PW_CHECK(o.val_split >= 0 && o.val_split < 1, "[--val-split] must be in [0, 1), got {}",
           o.val_split);
  PW_CHECK(o.crop_pct > 0 && o.crop_pct <= 1, "[--crop-pct] must be in (0, 1], got {}", o.crop_pct);
  PW_CHECK(o.scale.size() == 2 && o.scale[0] > 0 && o.scale[0] <= o.scale[1] && o.scale[1] <= 1,
           "[--scale] expects MIN MAX with 0 < MIN <= MAX <= 1, got {}", fmt::join(o.scale, " "));
  PW_CHECK(o.ratio.size() == 2 && o.ratio[0] > 0 && o.ratio[0] <= o.ratio[1],
           "[--ratio] expects MIN MAX with 0 < MIN <= MAX, got {}", fmt::join(o.ratio, " "));
  PW_CHECK(o.cache_mb >= 0, "[--cache-mb] must not be negative, got {}", o.cache_mb);
  PW_CHECK(o.dataset != "folder" || !o.data.empty(),
           "[--data] --dataset folder needs --data ROOT (ROOT/train/<class>/, ROOT/val/<class>/)");
  PW_CHECK(o.dist_timeout >= 0, "[--dist-timeout] must be >= 0 seconds, got {}", o.dist_timeout);
}

}  // namespace pw::app
