#include "apps/train/trainer.h"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "apps/commands/plot.h"
#include "data/loader.h"
#include "data/locate.h"
#include "apps/evaluate.h"
#include "apps/precision.h"
#include "apps/train/budget.h"
#include "apps/train/progress.h"
#include "apps/train/schedule.h"
#include "apps/weights.h"
#include "core/autocast.h"
#include "core/autograd.h"
#include "io/file_io.h"
#include "ops/nn.h"
#include "optim/clip_grad.h"
#include "optim/ema.h"

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
      // The summary of a finished run is written again when the resumed run finishes.
      if (j.value("type", "") == "summary") continue;
      if (j.value("global_step", std::int64_t{0}) <= global_step) lines_.push_back(line);
    }
  }
  void add(const nlohmann::json& j) { lines_.push_back(j.dump()); }
  // The last evaluated epoch record, or null.
  nlohmann::json last_evaluation() const {
    for (auto it = lines_.rbegin(); it != lines_.rend(); ++it) {
      auto j = nlohmann::json::parse(*it, nullptr, false);
      if (!j.is_discarded() && j.value("type", "") == "epoch" && j.contains("test_accuracy"))
        return j;
    }
    return nullptr;
  }
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
    if (key == "recipe") continue;  // the saved values came from it; a recipe is not re-applied
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

namespace {

// One evaluation of the test set: the weights, and the model EMA's when the run keeps one.
struct Evaluation {
  double loss = 0, accuracy = -1;
  double loss_ema = 0, accuracy_ema = -1;  // accuracy_ema < 0: no EMA
  double seconds = 0;
  double best() const { return std::max(accuracy, accuracy_ema); }
};

}  // namespace

TrainResult train(TrainOptions o) {
  const auto t_start = Clock::now();  // wall time counts from here, data loading included
  validate_train_options(o);
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
  const Tta tta = parse_tta(o.tta);
  const std::optional<double> budget = parse_time_budget(o.time_budget);

  // ---- data ----
  const auto where = data::locate_cifar10(data::default_locate_options(
      o.data.empty() ? std::nullopt : std::optional<fs::path>(o.data)));
  const data::Cifar10 cifar = data::read_cifar10(where.path, o.limit_train > 0 ? o.limit_train : -1,
                                                 o.limit_test > 0 ? o.limit_test : -1);
  progress.message(fmt::format("data: {} ({}), {} train / {} test images", where.path.string(),
                               where.how, cifar.train.size(), cifar.test.size()));
  data::Loader train_loader(cifar.train, loader_config(o));
  const std::int64_t steps_per_epoch = train_loader.num_batches();

  // ---- the checkpoint to resume from: its state sizes a budgeted schedule ----
  std::optional<LoadedModel> resumed;
  TrainState state;
  fs::path run_dir, ckpt;
  if (!o.resume.empty()) {
    ckpt = resolve_resume_checkpoint(o.resume);
    run_dir = ckpt.parent_path();
    resumed = load_model_file(ckpt.string());
    PW_CHECK(resumed->is_checkpoint, "[--resume] {} is a weights file, not a checkpoint",
             ckpt.string());
    state = resumed->state;
  } else {
    run_dir = fs::path(o.output) / (o.name.empty() ? default_run_name(o) : o.name);
    fs::create_directories(run_dir);
  }
  // Without a budget the schedule spans --epochs; with one, it spans the planned step count,
  // provisionally --epochs until the first steps are measured.
  std::int64_t total_steps = o.epochs * steps_per_epoch;
  if (budget && state.planned_steps > 0) total_steps = state.planned_steps;

  // ---- model, optimizer, schedule, EMA ----
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
  Schedule schedule = make_schedule(o, *optimizer, steps_per_epoch, total_steps);
  manual_seed(o.seed ^ 0x5eed);  // dropout and drop path draw from the default generator
  if (resumed) {
    load_weights_into(model, resumed->weights);
    optimizer->load_state_dict(resumed->optimizer);
    if (schedule.per_step) schedule.per_step->load_state_dict(state.scheduler);
    if (schedule.plateau) schedule.plateau->load_state_dict(state.scheduler);
    default_generator().set_state(state.rng);
    progress.message(fmt::format("resumed {} at epoch {} batch {} (step {}, {} of wall time)",
                                 ckpt.string(), state.epoch + 1, state.batch, state.global_step,
                                 format_duration(state.elapsed_seconds)));
  }
  // The average starts from the weights the run starts from (or resumes with its saved state);
  // a second model of the same shape evaluates it.
  std::unique_ptr<optim::ModelEma> ema;
  std::unique_ptr<models::VisionTransformer> ema_model;
  if (o.model_ema) {
    ema = std::make_unique<optim::ModelEma>(
        model.state_dict(), optim::ModelEmaOptions{o.model_ema_decay, o.model_ema_warmup});
    if (resumed && !resumed->ema.empty()) {
      PW_CHECK(resumed->ema_state.is_object(),
               "[--resume] the checkpoint's model EMA has no state");
      ema->load_state(resumed->ema, resumed->ema_state);
    } else if (resumed) {
      progress.message("the checkpoint holds no model EMA: the average starts from its weights");
    }
    Generator unused(0);  // the weights are overwritten before every use
    ema_model = std::make_unique<models::VisionTransformer>(info.config, unused);
  }

  // ---- run folder ----
  write_file_atomic((run_dir / "args.json").string(), nlohmann::json(o).dump(2) + "\n");
  MetricsLog metrics(run_dir / "metrics.jsonl");
  if (resumed) metrics.load_until(state.global_step);
  const fs::path last_path = run_dir / "checkpoint-last.safetensors";
  const fs::path best_path = run_dir / "checkpoint-best.safetensors";
  progress.message(fmt::format("model: ViT {} ({} parameters), run folder {}", o.preset,
                               model.num_parameters(), run_dir.string()));
  progress.message(describe(precision));
  state.precision = precision.precision;
  // Wall time of the run: what earlier invocations spent (saved in the checkpoint) plus this
  // one's, from its start; the time between invocations does not count.
  const double elapsed_before = state.elapsed_seconds;
  auto elapsed = [&] { return elapsed_before + seconds_since(t_start); };

  // ---- the time budget ----
  std::optional<BudgetPlanner> planner;
  if (budget) {
    const double passes = (ema ? 2.0 : 1.0) * (tta == Tta::Flip ? 2.0 : 1.0);
    const double eval_in_steps =
        passes * static_cast<double>(cifar.test.size()) / (3.0 * static_cast<double>(o.batch_size));
    // A checkpoint holds the weights, two optimizer buffers and the EMA; assume 100 MB/s.
    const double checkpoint_bytes =
        4.0 * static_cast<double>(model.num_parameters()) * (ema ? 4.0 : 3.0);
    planner.emplace(*budget, steps_per_epoch, o.eval_every, eval_in_steps,
                    0.1 + checkpoint_bytes / 1e8);
    progress.message(fmt::format(
        "time budget: {} ({} left); the schedule is sized to it once the first steps are timed",
        describe_duration(*budget), describe_duration(std::max(0.0, *budget - elapsed()))));
  }
  // Re-sizes the per-step schedule to `total` steps, at the current step.
  auto resize_schedule = [&](std::int64_t total) {
    if (total == total_steps) return;
    total_steps = total;
    if (!schedule.per_step) return;  // plateau does not depend on the length
    schedule = make_schedule(o, *optimizer, steps_per_epoch, total_steps);
    schedule.per_step->set_epoch(state.global_step);
  };
  const std::int64_t replan_every = std::max<std::int64_t>(1, steps_per_epoch / 10);
  std::int64_t steps_since_plan = 0;
  bool planned = false;
  auto planned_epochs = [&] { return (total_steps + steps_per_epoch - 1) / steps_per_epoch; };

  auto save_last = [&] {
    state.rng = default_generator().state();
    state.scheduler =
        schedule.per_step ? schedule.per_step->state_dict() : schedule.plateau->state_dict();
    state.elapsed_seconds = elapsed();
    state.planned_steps = budget ? total_steps : 0;
    save_checkpoint(last_path.string(), model, info, *optimizer, state, ema.get());
  };

  TrainResult result;
  result.run_dir = run_dir.string();
  result.best_accuracy = state.best_accuracy;
  std::int64_t images_total = 0;
  double train_seconds = 0;
  model.train();
  for (; state.epoch < planned_epochs(); ++state.epoch, state.batch = 0) {
    progress.start_epoch(state.epoch + 1, planned_epochs(), steps_per_epoch);
    train_loader.start_epoch(state.epoch, state.batch);
    const auto epoch_start = Clock::now();
    auto step_start = epoch_start;
    // A resumed epoch continues the sums of its first part (zero at an epoch start).
    double loss_sum = state.epoch_loss_sum, wait = 0;
    std::int64_t correct = state.epoch_correct, seen = state.epoch_seen, seen_here = 0;
    // A budget may end the run inside an epoch: the loop stops at the planned step count.
    while (state.global_step < total_steps) {
      auto batch = train_loader.next();
      if (!batch) break;
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
      if (ema) ema->update();
      if (schedule.per_step) schedule.per_step->step();
      ++state.batch;
      ++state.global_step;
      loss_sum += loss_value * static_cast<double>(n);
      const auto predicted = argmax_rows(logits);
      for (std::size_t i = 0; i < predicted.size(); ++i)
        correct += predicted[i] == batch->labels[i];
      seen += n;
      seen_here += n;
      state.epoch_loss_sum = loss_sum;
      state.epoch_correct = correct;
      state.epoch_seen = seen;
      const double epoch_elapsed = seconds_since(epoch_start);
      StepStats st{state.batch,
                   loss_sum / static_cast<double>(seen),
                   static_cast<double>(correct) / static_cast<double>(seen),
                   lr,
                   static_cast<double>(seen_here) / epoch_elapsed,
                   wait / epoch_elapsed};
      progress.update(st);
      if (state.global_step % o.log_every == 0)
        metrics.add({{"type", "step"},
                     {"epoch", state.epoch + 1},
                     {"step", state.batch},
                     {"global_step", state.global_step},
                     {"loss", loss_value},
                     {"lr", lr},
                     {"images_per_sec", st.images_per_sec},
                     {"data_wait", st.data_wait_fraction},
                     {"elapsed_seconds", elapsed()}});
      const bool stop_now = stop_requested.load() ||
                            (o.stop_after_steps > 0 && state.global_step >= o.stop_after_steps);
      if (stop_now) {
        metrics.flush();
        save_last();
        progress.message(fmt::format(
            "stopped at epoch {} step {}; checkpoint saved to {}. Resume with --resume {}",
            state.epoch + 1, state.batch, last_path.string(), run_dir.string()));
        result.interrupted = true;
        result.wall_seconds = elapsed();
        return result;
      }
      if (planner) {
        const auto now = Clock::now();
        planner->record_step(std::chrono::duration<double>(now - step_start).count());
        step_start = now;
        if (planner->ready()) {
          // Adopt a new plan now and then (a schedule re-sized at every step would wobble),
          // but stop at once when even one more step would not fit.
          const std::int64_t plan = planner->plan(elapsed(), state.global_step, state.epoch + 1);
          ++steps_since_plan;
          if (plan <= state.global_step || !planned || steps_since_plan >= replan_every) {
            resize_schedule(plan);
            planned = true;
            steps_since_plan = 0;
          }
        }
      }
    }
    const double epoch_seconds = std::max(seconds_since(epoch_start), 1e-9);
    train_seconds += epoch_seconds;
    images_total += seen_here;
    // At an epoch end the plan is made again before deciding whether this epoch is the last.
    if (planner && planner->ready()) {
      resize_schedule(planner->plan(elapsed(), state.global_step, state.epoch + 1));
      steps_since_plan = 0;
    }
    const bool last_epoch = state.global_step >= total_steps;
    nlohmann::json epoch_metrics{
        {"type", "epoch"},
        {"epoch", state.epoch + 1},
        {"global_step", state.global_step},
        {"train_loss", seen ? loss_sum / static_cast<double>(seen) : 0.0},
        {"train_accuracy", seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0},
        {"lr", optimizer->param_groups()[0].lr},
        {"epoch_seconds", epoch_seconds},
        {"images_per_sec", static_cast<double>(seen_here) / epoch_seconds},
        {"data_wait_seconds", wait}};
    if (budget) epoch_metrics["planned_steps"] = total_steps;
    std::string line =
        fmt::format("epoch {}/{}: train loss {:.4f} acc {:.2f}% ({:.0f} img/s, {})",
                    state.epoch + 1, planned_epochs(), epoch_metrics["train_loss"].get<double>(),
                    100 * epoch_metrics["train_accuracy"].get<double>(),
                    static_cast<double>(seen_here) / epoch_seconds, format_duration(epoch_seconds));
    bool is_best = false;
    if ((state.epoch + 1) % o.eval_every == 0 || last_epoch) {
      const auto eval_start = Clock::now();
      Evaluation ev;
      const SplitPredictions raw = predict_split(
          model, cifar.test, o.batch_size, static_cast<int>(o.workers), precision.bf16(), tta);
      ev.loss = raw.loss;
      ev.accuracy = raw.accuracy();
      if (ema) {
        ema->copy_to(ema_model->state_dict());
        const SplitPredictions averaged =
            predict_split(*ema_model, cifar.test, o.batch_size, static_cast<int>(o.workers),
                          precision.bf16(), tta);
        ev.loss_ema = averaged.loss;
        ev.accuracy_ema = averaged.accuracy();
      }
      ev.seconds = seconds_since(eval_start);
      if (planner) planner->record_eval(ev.seconds);
      epoch_metrics["test_loss"] = ev.loss;
      epoch_metrics["test_accuracy"] = ev.accuracy;
      if (ema) {
        epoch_metrics["test_loss_ema"] = ev.loss_ema;
        epoch_metrics["test_accuracy_ema"] = ev.accuracy_ema;
      }
      epoch_metrics["eval_seconds"] = ev.seconds;
      result.final_accuracy = ev.accuracy;
      result.final_accuracy_ema = ev.accuracy_ema;
      // The best checkpoint is the best of either weights (it holds both).
      is_best = ev.best() > state.best_accuracy;
      if (is_best) state.best_accuracy = ev.best(), state.best_epoch = state.epoch + 1;
      line += fmt::format(" | test loss {:.4f} acc {:.2f}%", ev.loss, 100 * ev.accuracy);
      if (ema)
        line += fmt::format(" | EMA loss {:.4f} acc {:.2f}%", ev.loss_ema, 100 * ev.accuracy_ema);
      line += fmt::format(" (best {:.2f}%)", 100 * state.best_accuracy);
      if (schedule.plateau) schedule.plateau->step(ev.accuracy);
    }
    epoch_metrics["elapsed_seconds"] = elapsed();
    if (budget)
      line += fmt::format(" [{} of {}]", format_duration(elapsed()), format_duration(*budget));
    const auto end_start = Clock::now();
    metrics.add(epoch_metrics);
    metrics.flush();
    // The checkpoint describes the state after this epoch: the next epoch, batch 0.
    ++state.epoch;
    state.batch = 0;
    state.epoch_loss_sum = 0;
    state.epoch_correct = 0;
    state.epoch_seen = 0;
    save_last();
    if (is_best) save_checkpoint(best_path.string(), model, info, *optimizer, state, ema.get());
    --state.epoch;
    write_curves_png(run_dir, run_dir / "curves.png");
    if (planner) planner->record_epoch_end(seconds_since(end_start));
    progress.finish_epoch(line);
  }

  // ---- the weights file: the better of the raw and the averaged weights ----
  if (result.final_accuracy < 0) {
    // Nothing was evaluated here: the resumed run had already finished its last epoch.
    const nlohmann::json last = metrics.last_evaluation();
    if (last.is_object()) {
      result.final_accuracy = last.value("test_accuracy", -1.0);
      result.final_accuracy_ema = last.value("test_accuracy_ema", -1.0);
    }
  }
  const bool use_ema = ema && result.final_accuracy_ema > result.final_accuracy;
  if (use_ema) ema->copy_to(ema_model->state_dict());
  result.model_weights = use_ema ? "ema" : "raw";
  save_model_weights((run_dir / "model.safetensors").string(), use_ema ? *ema_model : model, info);
  if (ema)
    progress.message(fmt::format(
        "model.safetensors holds the {} weights: final test accuracy {:.2f}% (EMA) vs {:.2f}% "
        "(raw)",
        use_ema ? "EMA" : "raw", 100 * result.final_accuracy_ema, 100 * result.final_accuracy));
  result.best_accuracy = state.best_accuracy;
  result.wall_seconds = elapsed();
  result.images_per_sec = train_seconds > 0 ? static_cast<double>(images_total) / train_seconds : 0;
  nlohmann::json summary{{"type", "summary"},
                         {"global_step", state.global_step},
                         {"epochs", state.epoch},
                         {"final_accuracy", result.final_accuracy},
                         {"best_accuracy", result.best_accuracy},
                         {"best_epoch", state.best_epoch},
                         {"model_weights", result.model_weights},
                         {"train_images_per_sec", result.images_per_sec},
                         {"elapsed_seconds", result.wall_seconds}};
  if (ema) summary["final_accuracy_ema"] = result.final_accuracy_ema;
  if (budget) summary["time_budget_seconds"] = *budget;
  metrics.add(summary);
  metrics.flush();
  progress.message(fmt::format(
      "done in {}{}: best test accuracy {:.2f}% (epoch {}), final {:.2f}%, {:.0f} train "
      "images/s\nrun folder: {}",
      format_duration(result.wall_seconds),
      budget ? fmt::format(" (budget {})", describe_duration(*budget)) : "",
      100 * result.best_accuracy, state.best_epoch,
      100 * (use_ema ? result.final_accuracy_ema : result.final_accuracy), result.images_per_sec,
      run_dir.string()));
  return result;
}

}  // namespace pw::app
