#include "apps/train/trainer.h"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "apps/commands/plot.h"
#include "apps/data/loader.h"
#include "apps/data/locate.h"
#include "apps/evaluate.h"
#include "apps/precision.h"
#include "apps/train/progress.h"
#include "apps/weights.h"
#include "core/autocast.h"
#include "core/autograd.h"
#include "core/file_io.h"
#include "ops/nn.h"
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "optim/scheduler.h"
#include "optim/sgd.h"

extern "C" void openblas_set_num_threads(int);

namespace pw::app {
namespace fs = std::filesystem;
namespace {

std::atomic<bool> stop_requested{false};
extern "C" void on_signal(int) {
  stop_requested.store(true);
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

void set_compute_threads(std::int64_t threads) {
  if (threads <= 0) return;
  omp_set_num_threads(static_cast<int>(threads));
  openblas_set_num_threads(static_cast<int>(threads));
}

namespace {

// timm's rule: no weight decay on biases, norm weights (1-D tensors), pos_embed, cls_token.
std::vector<optim::GroupSpec> param_groups(const models::VisionTransformer& model) {
  std::vector<Tensor> decay, no_decay;
  for (auto& [name, p] : model.named_parameters()) {
    if (p.dim() <= 1 || name == "pos_embed" || name == "cls_token")
      no_decay.push_back(p);
    else
      decay.push_back(p);
  }
  return {{decay, std::nullopt, std::nullopt}, {no_decay, std::nullopt, 0.0}};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& o,
                                                 const models::VisionTransformer& model) {
  auto groups = param_groups(model);
  if (o.opt == "sgd") {
    optim::SGDOptions so;
    so.lr = o.lr;
    so.momentum = o.momentum;
    so.weight_decay = o.weight_decay;
    so.nesterov = o.momentum > 0;
    return std::make_unique<optim::SGD>(groups, so);
  }
  if (o.opt == "adam") {
    optim::AdamOptions ao;
    ao.lr = o.lr;
    ao.weight_decay = o.weight_decay;
    return std::make_unique<optim::Adam>(groups, ao);
  }
  optim::AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  return std::make_unique<optim::AdamW>(groups, ao);
}

// A per-step learning-rate schedule (plateau is stepped per epoch by the loop instead).
struct Schedule {
  std::unique_ptr<optim::LRScheduler> per_step;
  std::unique_ptr<optim::ReduceLROnPlateau> plateau;
};

Schedule make_schedule(const TrainOptions& o, optim::Optimizer& opt, std::int64_t steps_per_epoch) {
  Schedule s;
  const std::int64_t total = o.epochs * steps_per_epoch;
  const auto warmup = std::min<std::int64_t>(
      static_cast<std::int64_t>(std::llround(o.warmup_epochs * steps_per_epoch)), total - 1);
  std::unique_ptr<optim::LRScheduler> main;
  if (o.sched == "onecycle") {
    s.per_step = std::make_unique<optim::OneCycleLR>(opt, o.lr, total);
    return s;
  }
  if (o.sched == "plateau") {
    optim::PlateauOptions po;
    po.mode = optim::PlateauMode::Max;
    po.factor = o.decay_rate;
    po.patience = o.patience_epochs;
    po.min_lr = o.min_lr;
    s.plateau = std::make_unique<optim::ReduceLROnPlateau>(opt, po);
    return s;
  }
  if (o.sched == "cosine") {
    main = std::make_unique<optim::CosineAnnealingLR>(
        opt, std::max<std::int64_t>(1, total - warmup), o.min_lr);
  } else if (o.sched == "step") {
    main = std::make_unique<optim::StepLR>(opt, o.decay_epochs * steps_per_epoch, o.decay_rate);
  } else if (o.sched == "multistep") {
    std::vector<std::int64_t> ms;
    for (auto e : o.decay_milestones) ms.push_back(e * steps_per_epoch - warmup);
    main = std::make_unique<optim::MultiStepLR>(opt, ms, o.decay_rate);
  } else {
    main = std::make_unique<optim::ConstantLR>(opt, 1.0, 0);
  }
  if (warmup <= 0) {
    s.per_step = std::move(main);
    return s;
  }
  auto warm =
      std::make_unique<optim::LinearLR>(opt, std::min(1.0, o.warmup_lr / o.lr), 1.0, warmup);
  std::vector<std::shared_ptr<optim::LRScheduler>> parts;
  parts.push_back(std::move(warm));
  parts.push_back(std::move(main));
  s.per_step = std::make_unique<optim::SequentialLR>(opt, std::move(parts),
                                                     std::vector<std::int64_t>{warmup});
  return s;
}

// The training loader: shuffled and augmented as the flags say.
data::LoaderConfig loader_config(const TrainOptions& o) {
  data::LoaderConfig c;
  c.batch_size = o.batch_size;
  c.seed = o.seed;
  c.num_workers = static_cast<int>(o.workers);
  c.shuffle = !o.no_shuffle;
  c.drop_last = false;
  auto& a = c.augment;
  a.augment = o.augment == "none"          ? data::AugmentPolicy::None
              : o.augment == "randaugment" ? data::AugmentPolicy::RandAugment
              : o.augment == "autoaugment" ? data::AugmentPolicy::AutoAugment
                                           : data::AugmentPolicy::Basic;
  a.randaugment_n = static_cast<int>(o.randaugment_n);
  a.randaugment_m = static_cast<int>(o.randaugment_m);
  a.cutout_size = static_cast<int>(o.cutout);
  a.mixup_alpha = o.mixup;
  a.cutmix_alpha = o.cutmix;
  a.label_smoothing = o.smoothing;
  return c;
}

// metrics.jsonl is rewritten whole (atomically) from memory; it is small.
class MetricsLog {
 public:
  explicit MetricsLog(fs::path path) : path_(std::move(path)) {}
  // Keeps the lines of an earlier run up to `global_step` (for resume).
  void load_until(std::int64_t global_step) {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.value("global_step", std::int64_t{0}) <= global_step) lines_.push_back(line);
    }
  }
  void add(const nlohmann::json& j) { lines_.push_back(j.dump()); }
  void flush() const {
    std::string text;
    for (const auto& l : lines_) text += l + "\n";
    write_file_atomic(path_.string(), text);
  }

 private:
  fs::path path_;
  std::vector<std::string> lines_;
};

std::string default_run_name(const TrainOptions& o) {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return o.preset + "-" + buf;
}

fs::path resolve_resume_checkpoint(const std::string& resume) {
  fs::path p(resume);
  if (fs::is_directory(p)) p /= "checkpoint-last.safetensors";
  PW_CHECK(fs::is_regular_file(p), "[--resume] no checkpoint at {}", p.string());
  return p;
}

}  // namespace

void request_stop() {
  stop_requested.store(true);
}

TrainOptions merge_resume_options(const TrainOptions& cli, const CLI::App& app) {
  if (cli.resume.empty()) return cli;
  const fs::path ckpt = resolve_resume_checkpoint(cli.resume);
  const fs::path args_path = ckpt.parent_path() / "args.json";
  PW_CHECK(fs::is_regular_file(args_path), "[--resume] {} has no args.json beside it",
           ckpt.string());
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(std::ifstream(args_path));
  } catch (const nlohmann::json::exception& e) {
    fail("[--resume] {} is not valid JSON: {}", args_path.string(), e.what());
  }
  // The saved arguments are the base; flags given on this command line override them. What only
  // concerns this invocation (where to resume from, progress display, the test stop) is never
  // taken from the saved run.
  const nlohmann::json given = cli;
  for (const auto& [key, value] : given.items()) {
    std::string flag = "--" + key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    const CLI::Option* opt = app.get_option_no_throw(flag);
    if (opt && opt->count() > 0) saved[key] = value;
  }
  for (const char* key : {"resume", "progress", "stop_after_steps"}) saved[key] = given[key];
  TrainOptions o;
  try {
    o = saved.get<TrainOptions>();
  } catch (const nlohmann::json::exception& e) {
    fail("[--resume] {} does not hold valid training arguments: {}", args_path.string(), e.what());
  }
  o.output = ckpt.parent_path().parent_path().string();
  o.name = ckpt.parent_path().filename().string();
  return o;
}

TrainResult train(TrainOptions o) {
  const auto t_start = Clock::now();
  set_compute_threads(o.threads);
  stop_requested.store(false);
  auto prev_int = std::signal(SIGINT, on_signal);
  auto prev_term = std::signal(SIGTERM, on_signal);
  struct RestoreSignals {
    decltype(prev_int) i, t;
    ~RestoreSignals() {
      std::signal(SIGINT, i);
      std::signal(SIGTERM, t);
    }
  } restore{prev_int, prev_term};

  Progress progress(stdout, o.progress, o.log_every);
  // auto is resolved once, and the run saves (args.json, checkpoints) what it resolved to, so
  // that --resume keeps the precision even on another machine.
  const PrecisionChoice precision = resolve_precision(o.precision);
  o.precision = precision.precision;

  // ---- data ----
  const auto where = data::locate_cifar10(data::default_locate_options(
      o.data.empty() ? std::nullopt : std::optional<fs::path>(o.data)));
  const data::Cifar10 cifar = data::read_cifar10(where.path, o.limit_train > 0 ? o.limit_train : -1,
                                                 o.limit_test > 0 ? o.limit_test : -1);
  progress.message(fmt::format("data: {} ({}), {} train / {} test images", where.path.string(),
                               where.how, cifar.train.size(), cifar.test.size()));
  data::Loader train_loader(cifar.train, loader_config(o));
  const std::int64_t steps_per_epoch = train_loader.num_batches();

  // ---- model, optimizer, schedule ----
  ModelInfo info;
  models::ViTConfig preset = models::vit_preset(o.preset);
  preset.dropout = o.dropout;
  preset.drop_path = o.drop_path;
  info.config = models::apply_overrides(preset, o.model);
  info.classes = cifar.train.class_names;
  Generator init_gen(o.seed);
  models::VisionTransformer model(info.config, init_gen);
  if (!o.init.empty()) load_weights_into(model, load_model_file(o.init).weights);
  auto optimizer = make_optimizer(o, model);
  Schedule schedule = make_schedule(o, *optimizer, steps_per_epoch);
  manual_seed(o.seed ^ 0x5eed);  // dropout and drop path draw from the default generator

  // ---- run folder and resume ----
  TrainState state;
  fs::path run_dir;
  if (!o.resume.empty()) {
    const fs::path ckpt = resolve_resume_checkpoint(o.resume);
    run_dir = ckpt.parent_path();
    LoadedModel loaded = load_model_file(ckpt.string());
    PW_CHECK(loaded.is_checkpoint, "[--resume] {} is a weights file, not a checkpoint",
             ckpt.string());
    load_weights_into(model, loaded.weights);
    optimizer->load_state_dict(loaded.optimizer);
    state = loaded.state;
    if (schedule.per_step) schedule.per_step->load_state_dict(state.scheduler);
    if (schedule.plateau) schedule.plateau->load_state_dict(state.scheduler);
    default_generator().set_state(state.rng);
    progress.message(fmt::format("resumed {} at epoch {} batch {} (step {})", ckpt.string(),
                                 state.epoch + 1, state.batch, state.global_step));
  } else {
    run_dir = fs::path(o.output) / (o.name.empty() ? default_run_name(o) : o.name);
    fs::create_directories(run_dir);
  }
  write_file_atomic((run_dir / "args.json").string(), nlohmann::json(o).dump(2) + "\n");
  MetricsLog metrics(run_dir / "metrics.jsonl");
  if (!o.resume.empty()) metrics.load_until(state.global_step);
  const fs::path last_path = run_dir / "checkpoint-last.safetensors";
  const fs::path best_path = run_dir / "checkpoint-best.safetensors";
  progress.message(fmt::format("model: ViT {} ({} parameters), run folder {}", o.preset,
                               model.num_parameters(), run_dir.string()));
  progress.message(describe(precision));
  state.precision = precision.precision;

  auto save_last = [&] {
    state.rng = default_generator().state();
    state.scheduler =
        schedule.per_step ? schedule.per_step->state_dict() : schedule.plateau->state_dict();
    save_checkpoint(last_path.string(), model, info, *optimizer, state);
  };

  TrainResult result;
  result.run_dir = run_dir.string();
  result.best_accuracy = state.best_accuracy;
  std::int64_t images_total = 0;
  double train_seconds = 0;
  model.train();
  for (; state.epoch < o.epochs; ++state.epoch, state.batch = 0) {
    progress.start_epoch(state.epoch + 1, o.epochs, steps_per_epoch);
    train_loader.start_epoch(state.epoch, state.batch);
    const auto epoch_start = Clock::now();
    double loss_sum = 0, wait = 0;
    std::int64_t correct = 0, seen = 0, steps = 0;
    while (auto batch = train_loader.next()) {
      const auto n = static_cast<std::int64_t>(batch->labels.size());
      wait += batch->wait_seconds;
      const double lr = optimizer->param_groups()[0].lr;
      Tensor logits, loss;
      {
        // The forward pass under autocast: each weight is cast to bf16 once per step, and
        // backward (outside the guard) uses the casts the forward saved.
        AutocastGuard autocast(precision.bf16());
        logits = model.forward(batch->images);
        loss = batch->soft_targets.defined() ? cross_entropy_soft(logits, batch->soft_targets)
                                             : cross_entropy(logits, labels_tensor(batch->labels),
                                                             Reduction::Mean, o.smoothing);
      }
      const double loss_value = loss.item();
      if (!std::isfinite(loss_value))
        fail("[train] the loss is {} at epoch {} step {}; stopping. The last good checkpoint is {}",
             loss_value, state.epoch + 1, state.batch + 1,
             fs::exists(last_path) ? last_path.string() : "(none yet)");
      optimizer->zero_grad();
      loss.backward();
      if (o.clip_grad > 0) optim::clip_grad_norm_(model.parameters(), o.clip_grad);
      optimizer->step();
      if (schedule.per_step) schedule.per_step->step();
      ++state.batch;
      ++state.global_step;
      ++steps;
      loss_sum += loss_value * static_cast<double>(n);
      const auto predicted = argmax_rows(logits);
      for (std::size_t i = 0; i < predicted.size(); ++i)
        correct += predicted[i] == batch->labels[i];
      seen += n;
      const double elapsed = seconds_since(epoch_start);
      StepStats st{state.batch,
                   loss_sum / static_cast<double>(seen),
                   static_cast<double>(correct) / static_cast<double>(seen),
                   lr,
                   static_cast<double>(seen) / elapsed,
                   wait / elapsed};
      progress.update(st);
      if (state.global_step % o.log_every == 0)
        metrics.add({{"type", "step"},
                     {"epoch", state.epoch + 1},
                     {"step", state.batch},
                     {"global_step", state.global_step},
                     {"loss", loss_value},
                     {"lr", lr},
                     {"images_per_sec", st.images_per_sec},
                     {"data_wait", st.data_wait_fraction}});
      const bool stop_now = stop_requested.load() ||
                            (o.stop_after_steps > 0 && state.global_step >= o.stop_after_steps);
      if (stop_now) {
        metrics.flush();
        save_last();
        progress.message(fmt::format(
            "stopped at epoch {} step {}; checkpoint saved to {}. Resume with --resume {}",
            state.epoch + 1, state.batch, last_path.string(), run_dir.string()));
        result.interrupted = true;
        result.wall_seconds = seconds_since(t_start);
        return result;
      }
    }
    const double epoch_seconds = std::max(seconds_since(epoch_start), 1e-9);
    train_seconds += epoch_seconds;
    images_total += seen;
    nlohmann::json epoch_metrics{
        {"type", "epoch"},
        {"epoch", state.epoch + 1},
        {"global_step", state.global_step},
        {"train_loss", seen ? loss_sum / static_cast<double>(seen) : 0.0},
        {"train_accuracy", seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0},
        {"lr", optimizer->param_groups()[0].lr},
        {"epoch_seconds", epoch_seconds},
        {"images_per_sec", seen / epoch_seconds},
        {"data_wait_seconds", wait}};
    std::string line =
        fmt::format("epoch {}/{}: train loss {:.4f} acc {:.2f}% ({:.0f} img/s, {})",
                    state.epoch + 1, o.epochs, epoch_metrics["train_loss"].get<double>(),
                    100 * epoch_metrics["train_accuracy"].get<double>(), seen / epoch_seconds,
                    format_duration(epoch_seconds));
    const bool last_epoch = state.epoch + 1 == o.epochs;
    bool is_best = false;
    if ((state.epoch + 1) % o.eval_every == 0 || last_epoch) {
      const SplitPredictions ev = predict_split(model, cifar.test, o.batch_size,
                                                static_cast<int>(o.workers), precision.bf16());
      const double accuracy = ev.accuracy();
      epoch_metrics["test_loss"] = ev.loss;
      epoch_metrics["test_accuracy"] = accuracy;
      result.final_accuracy = accuracy;
      is_best = accuracy > state.best_accuracy;
      if (is_best) state.best_accuracy = accuracy, state.best_epoch = state.epoch + 1;
      line += fmt::format(" | test loss {:.4f} acc {:.2f}% (best {:.2f}%)", ev.loss, 100 * accuracy,
                          100 * state.best_accuracy);
      if (schedule.plateau) schedule.plateau->step(accuracy);
    }
    metrics.add(epoch_metrics);
    metrics.flush();
    // The checkpoint describes the state after this epoch: the next epoch, batch 0.
    ++state.epoch;
    state.batch = 0;
    save_last();
    if (is_best) save_checkpoint(best_path.string(), model, info, *optimizer, state);
    --state.epoch;
    write_curves_png(run_dir, run_dir / "curves.png");
    progress.finish_epoch(line);
  }
  save_model_weights((run_dir / "model.safetensors").string(), model, info);
  result.best_accuracy = state.best_accuracy;
  result.wall_seconds = seconds_since(t_start);
  result.images_per_sec = train_seconds > 0 ? static_cast<double>(images_total) / train_seconds : 0;
  progress.message(fmt::format(
      "done in {}: best test accuracy {:.2f}% (epoch {}), final {:.2f}%, {:.0f} train "
      "images/s\nrun folder: {}",
      format_duration(result.wall_seconds), 100 * result.best_accuracy, state.best_epoch,
      100 * result.final_accuracy, result.images_per_sec, run_dir.string()));
  return result;
}

}  // namespace pw::app
