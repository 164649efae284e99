#include "apps/train/trainer.h"

#include <omp.h>

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <thread>

#include "apps/commands/plot.h"
#include "apps/train/resume.h"
#include "core/autocast.h"
#include "core/autograd.h"
#include "data/datasets.h"
#include "io/file_io.h"
#include "ops/loss.h"
#include "optim/clip_grad.h"

extern "C" void openblas_set_num_threads(int);

namespace pw::app {
namespace fs = std::filesystem;
namespace {

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

// Keys the per-sample dropout and drop-path streams apart from the data's.
constexpr std::uint64_t kDropoutStream = 0x64726f70ULL;

// The training loader: shuffled and augmented as the flags say, images made image_size square
// (CIFAR's pad-and-crop, or RandomResizedCrop for image folders) and normalised as the model's,
// making this rank's share of every global batch.
data::LoaderConfig loader_config(const TrainOptions& o, const ModelInfo& info,
                                 const dist::Communicator& comm) {
  data::LoaderConfig c;
  c.rank = comm.rank();
  c.ranks = comm.size();
  c.normalization = info.normalization;
  c.augment.image_size = static_cast<int>(info.config.image_size);
  c.augment.crop_pct = info.crop_pct;
  c.augment.random_resized_crop = o.dataset == "folder";
  c.augment.scale_min = o.scale.at(0);
  c.augment.scale_max = o.scale.at(1);
  c.augment.ratio_min = o.ratio.at(0);
  c.augment.ratio_max = o.ratio.at(1);
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

std::string default_run_name(const TrainOptions& o) {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return o.preset + "-" + buf;
}

// The images of the test batches [b0, b1) of `batch_size`, with b0, b1 this rank's share of
// the batches: every batch is then evaluated exactly as one process evaluates it.
data::Dataset test_shard(const data::Dataset& test, std::int64_t batch_size,
                         const dist::Communicator& comm) {
  const auto [b0, b1] = data::shard_range(data::num_batches(test.size(), batch_size, false),
                                          comm.rank(), comm.size());
  return test.slice(std::min(test.size(), b0 * batch_size), std::min(test.size(), b1 * batch_size));
}

// A hash of what a set holds: labels, class names, image sizes, and CIFAR's pixels (an image
// folder is known by its sizes and labels: whether its pixels are in memory depends on each
// machine's --cache-mb).
std::uint64_t fingerprint(const data::Dataset& d, std::uint64_t seed) {
  std::uint64_t h = dist::hash_bytes(d.labels.data(), d.labels.size() * sizeof(d.labels[0]), seed);
  for (const auto& name : d.class_names) h = dist::hash_bytes(name.data(), name.size(), h);
  h = dist::hash_bytes(d.sizes.data(), d.sizes.size() * sizeof(data::ImageSize), h);
  return d.files.empty() ? dist::hash_bytes(d.images.data(), d.images.size(), h) : h;
}

fs::path resolve_resume_checkpoint(const std::string& resume) {
  fs::path p(resume);
  if (fs::is_directory(p)) p /= "checkpoint-last.safetensors";
  PW_CHECK(fs::is_regular_file(p), "[--resume] no checkpoint at {}", p.string());
  return p;
}

}  // namespace

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
    validate_train_options(o);         // exactly the checks of the command line
  } catch (const std::exception& e) {  // a JSON type error or a value the flags refuse
    fail("[--resume] {} does not hold valid training arguments: {}", args_path.string(), e.what());
  }
  o.output = ckpt.parent_path().parent_path().string();
  o.name = ckpt.parent_path().filename().string();
  return o;
}

TrainResult train(TrainOptions o, dist::Communicator& comm) {
  Trainer trainer(std::move(o), comm);
  return trainer.run();
}

// ---- set-up ----

Trainer::Trainer(TrainOptions options, dist::Communicator& comm)
    : o_((validate_train_options(options), std::move(options))),
      comm_(comm),
      signals_(comm.size() == 1 ? StopOnSignals::Checks::Throw : StopOnSignals::Checks::Poll),
      t_start_(Clock::now()),
      progress_(comm.is_root() ? stdout : nullptr, o_.progress, o_.log_every) {
  set_compute_threads(o_.threads > 0 ? o_.threads : dist::default_threads(comm_));
  comm_.set_timeout(o_.dist_timeout);
  // auto is resolved once, and the run saves (args.json, checkpoints) what it resolved to, so
  // that --resume keeps the precision even on another machine.
  precision_ = resolve_precision(o_.precision);
  o_.precision = precision_.precision;
  tta_ = parse_tta(o_.tta);
  budget_ = parse_time_budget(o_.time_budget);
  load_data();
  check_ranks_agree();
  open_run();
  build_model();
  start_loader();
  plan_budget();
}

Trainer::~Trainer() = default;

void Trainer::load_data() {
  data::DatasetOptions d;
  d.dataset = o_.dataset;
  d.data = o_.data;
  d.cifar100_labels = o_.cifar100_labels;
  d.limit_train = o_.limit_train > 0 ? o_.limit_train : -1;
  d.limit_test = o_.limit_test > 0 ? o_.limit_test : -1;
  d.val_split = o_.val_split;
  d.seed = o_.seed;
  d.memory_budget_bytes = o_.cache_mb << 20;
  d.threads = static_cast<int>(o_.threads > 0 ? o_.threads : std::thread::hardware_concurrency());
  // A resumed run normalises as its checkpoint says, so a folder on disk need not be decoded
  // once more only to compute the mean and std again.
  d.compute_normalization = o_.resume.empty();
  data_ = data::load_datasets(d);
  for (const auto& note : data_.notes) progress_.message(note);
  PW_CHECK(data_.train.size() > 0, "[data] the training split is empty");
  steps_per_epoch_ = data::num_batches(data_.train.size(), o_.batch_size, /*drop_last=*/false);
  if (comm_.size() > 1) test_shard_ = test_shard(data_.test, o_.batch_size, comm_);
}

// Ranks that were started with other flags or read other data would train different models or
// wait for each other forever: both are found here, before the first step. The data's path, the
// threads, the memory budget and the progress display may differ (one machine's data may live
// elsewhere).
void Trainer::check_ranks_agree() {
  if (comm_.size() == 1) return;
  nlohmann::json flags = o_;
  for (const char* key : {"data", "threads", "workers", "cache_mb", "progress"}) flags.erase(key);
  const std::string text = flags.dump();
  dist::require_same(comm_, dist::hash_bytes(text.data(), text.size()), "the training options");
  dist::require_same(comm_, fingerprint(data_.test, fingerprint(data_.train, 0)),
                     "the data set (its images and labels)");
  const auto [lo, hi] = data::shard_range(o_.batch_size, comm_.rank(), comm_.size());
  progress_.message(fmt::format(
      "data parallel: {} ranks ({} on this machine, {} compute threads each); the global batch "
      "of {} is split {} per rank",
      comm_.size(), comm_.local_size(), omp_get_max_threads(), o_.batch_size,
      hi - lo == o_.batch_size / comm_.size() ? fmt::to_string(hi - lo)
                                              : fmt::format("{}-{}", hi - lo - 1, hi - lo)));
}

// The run folder, new or resumed; a resumed checkpoint's state also sizes a budgeted schedule.
void Trainer::open_run() {
  if (!o_.resume.empty()) {
    const fs::path ckpt = resolve_resume_checkpoint(o_.resume);
    run_dir_ = ckpt.parent_path();
    if (comm_.is_root())
      for (const std::string& removed : remove_stale_temporaries(run_dir_.string()))
        progress_.message(
            fmt::format("removed {}, left behind by a write that was killed", removed));
    resumed_ = load_resume_checkpoint(ckpt);
    resumed_from_ = ckpt;
    PW_CHECK(resumed_->is_checkpoint, "[--resume] {} is a weights file, not a checkpoint",
             ckpt.string());
    state_ = resumed_->state;
  } else {
    run_dir_ = fs::path(o_.output) / (o_.name.empty() ? default_run_name(o_) : o_.name);
    if (comm_.is_root()) fs::create_directories(run_dir_);
  }
  last_path_ = run_dir_ / "checkpoint-last.safetensors";
  best_path_ = run_dir_ / "checkpoint-best.safetensors";
  total_steps_ = o_.epochs * steps_per_epoch_;
  if (budget_ && state_.planned_steps > 0) total_steps_ = state_.planned_steps;
  elapsed_before_ = state_.elapsed_seconds;
  state_.precision = precision_.precision;
}

namespace {

// Whether --model entries set `key`.
bool overrides_key(const std::vector<std::string>& key_values, const std::string& key) {
  return std::any_of(key_values.begin(), key_values.end(),
                     [&](const std::string& kv) { return kv.substr(0, kv.find('=')) == key; });
}

}  // namespace

// The architecture: the preset's, or with --init the weights file's (fine-tuning), then the
// dropout flags and --model overrides; the image size follows --img-size and the class count
// the data.
models::ViTConfig Trainer::model_config(const LoadedModel* init) const {
  models::ViTConfig base = init ? init->info.config : models::vit_preset(o_.preset);
  base.dropout = o_.dropout;
  base.drop_path = o_.drop_path;
  models::ViTConfig c = models::apply_overrides(base, o_.model);
  if (o_.img_size > 0) {
    PW_CHECK(!overrides_key(o_.model, "image_size") || c.image_size == o_.img_size,
             "[--img-size] {} contradicts --model image_size={}", o_.img_size, c.image_size);
    c.image_size = o_.img_size;
  }
  const std::int64_t classes = data_.train.num_classes();
  PW_CHECK(!overrides_key(o_.model, "num_classes") || c.num_classes == classes,
           "[--model] num_classes={}, but the data has {} classes", c.num_classes, classes);
  c.num_classes = classes;
  c.validate();
  return c;
}

// Model, optimizer, schedule and EMA, restored from the checkpoint when resuming.
void Trainer::build_model() {
  const std::optional<LoadedModel> init =
      o_.init.empty() ? std::nullopt : std::optional<LoadedModel>(load_model_file(o_.init));
  describe_model(init ? &*init : nullptr);
  // The files' tensors must back their configs before a model takes memory for them.
  if (init) check_weights_fit(init->info.config, init->weights, o_.init);
  if (resumed_) check_weights_fit(info_.config, resumed_->weights, resumed_from_.string());
  Generator init_gen(o_.seed);
  model_ = std::make_unique<models::VisionTransformer>(info_.config, init_gen);
  if (init) load_init(*init);
  optimizer_ = make_optimizer(o_, *model_);
  buckets_ = std::make_unique<dist::GradientBuckets>(model_->parameters());
  schedule_ = make_schedule(o_, *optimizer_, steps_per_epoch_, total_steps_);
  // Dropout and drop path draw per sample in training (train_step); the default generator
  // serves any other draw, and its state is saved with the checkpoints.
  manual_seed(o_.seed ^ 0x5eed);
  if (resumed_) restore_resumed();
  if (o_.model_ema) make_ema();
  if (comm_.is_root()) {
    write_file_atomic((run_dir_ / "args.json").string(), nlohmann::json(o_).dump(2) + "\n");
    metrics_ = std::make_unique<MetricsLog>(run_dir_ / "metrics.jsonl");
    if (resumed_) metrics_->load_until(state_.global_step);
  }
  resumed_.reset();  // the weights are in the model now
  progress_.message(fmt::format("model: ViT {} at {}x{}, {} classes ({} parameters), run folder {}",
                                o_.init.empty() ? o_.preset : "from " + o_.init,
                                info_.config.image_size, info_.config.image_size,
                                info_.config.num_classes, model_->num_parameters(),
                                run_dir_.string()));
  progress_.message(describe(precision_));
}

// What the weights file will say of the model and its data (a resumed run keeps its
// normalization, and must have the checkpoint's classes).
void Trainer::describe_model(const LoadedModel* init) {
  info_.config = model_config(init);
  info_.classes = data_.train.class_names;
  info_.normalization = data_.train.normalization;
  info_.dataset = o_.dataset;
  info_.labels = o_.dataset == "cifar100" ? o_.cifar100_labels : "fine";
  info_.crop_pct = o_.dataset == "folder" ? o_.crop_pct : 1.0;
  info_.val_split = o_.val_split;
  info_.seed = o_.seed;
  if (resumed_) {
    PW_CHECK(resumed_->info.classes == info_.classes,
             "[--resume] the checkpoint's classes ({}) are not the data's ({})",
             fmt::join(resumed_->info.classes, ", "), fmt::join(info_.classes, ", "));
    info_.normalization = resumed_->info.normalization;
  }
}

// --init: another run's weights, the head replaced when the classes differ and the position
// embedding resized to this image size.
void Trainer::load_init(const LoadedModel& init) {
  NamedTensors weights = init.weights;
  const std::string head = prepare_head_for_finetuning(*model_, weights, init.info.classes,
                                                       info_.classes, o_.reset_head);
  load_weights_into(*model_, weights);
  progress_.message(fmt::format("--init {}: weights of a {}x{} model with {} classes{}", o_.init,
                                init.info.config.image_size, init.info.config.image_size,
                                init.info.config.num_classes,
                                init.info.config.image_size != info_.config.image_size
                                    ? fmt::format(", position embedding resized to {}x{}",
                                                  info_.config.image_size, info_.config.image_size)
                                    : ""));
  if (!head.empty()) progress_.message(head);
}

// --resume: the weights, optimizer, schedule, RNG and schedule position of the checkpoint.
void Trainer::restore_resumed() {
  load_weights_into(*model_, resumed_->weights);
  optimizer_->load_state_dict(resumed_->optimizer);
  if (schedule_.per_step) schedule_.per_step->load_state_dict(state_.scheduler);
  if (schedule_.plateau) schedule_.plateau->load_state_dict(state_.scheduler);
  default_generator().set_state(state_.rng);
  position_ = SchedulePosition(state_.schedule_position);
  progress_.message(fmt::format("resumed {} at epoch {} batch {} (step {}, {} of wall time)",
                                resumed_from_.string(), state_.epoch + 1, state_.batch,
                                state_.global_step, format_duration(state_.elapsed_seconds)));
}

// The average starts from the weights the run starts from (or resumes with its saved state);
// a second model of the same shape evaluates it.
void Trainer::make_ema() {
  ema_ = std::make_unique<optim::ModelEma>(
      model_->state_dict(), optim::ModelEmaOptions{o_.model_ema_decay, o_.model_ema_warmup});
  if (resumed_ && !resumed_->ema.empty()) {
    PW_CHECK(resumed_->ema_state.is_object(), "[--resume] the checkpoint's model EMA has no state");
    ema_->load_state(resumed_->ema, resumed_->ema_state);
  } else if (resumed_) {
    progress_.message("the checkpoint holds no model EMA: the average starts from its weights");
  }
  Generator unused(0);  // the weights are overwritten before every use
  ema_model_ = std::make_unique<models::VisionTransformer>(info_.config, unused);
}

void Trainer::start_loader() {
  loader_ = std::make_unique<data::Loader>(data_.train, loader_config(o_, info_, comm_));
  if (!data_.train.in_memory())
    progress_.message(fmt::format(
        "the training images are decoded from their files by {} loader worker thread{} (--workers)",
        o_.workers, o_.workers > 1 ? "s" : ""));
}

void Trainer::plan_budget() {
  replan_every_ = std::max<std::int64_t>(1, steps_per_epoch_ / 10);
  if (!budget_) return;
  const double passes = (ema_ ? 2.0 : 1.0) * (tta_ == Tta::Flip ? 2.0 : 1.0);
  const double eval_in_steps =
      passes * static_cast<double>(data_.test.size()) / (3.0 * static_cast<double>(o_.batch_size));
  // A checkpoint holds the weights, two optimizer buffers and the EMA; assume 100 MB/s.
  const double checkpoint_bytes =
      4.0 * static_cast<double>(model_->num_parameters()) * (ema_ ? 4.0 : 3.0);
  planner_.emplace(*budget_, steps_per_epoch_, o_.eval_every, eval_in_steps,
                   0.1 + checkpoint_bytes / 1e8);
  progress_.message(fmt::format(
      "time budget: {} ({} left); the schedule is sized to it once the first steps are timed",
      describe_duration(*budget_), describe_duration(std::max(0.0, *budget_ - elapsed()))));
}

// Wall time of the run: what earlier invocations spent (saved in the checkpoint) plus this
// one's, from its start; the time between invocations does not count.
double Trainer::elapsed() const {
  return elapsed_before_ + seconds_since(t_start_);
}

std::int64_t Trainer::planned_epochs() const {
  return (total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_;
}

// ---- the loop ----

TrainResult Trainer::run() try {
  result_.run_dir = run_dir_.string();
  result_.best_accuracy = state_.best_accuracy;
  model_->train();
  for (; state_.epoch < planned_epochs(); ++state_.epoch, state_.batch = 0) {
    progress_.start_epoch(state_.epoch + 1, planned_epochs(), steps_per_epoch_);
    loader_->start_epoch(state_.epoch, state_.batch);
    // A resumed epoch continues the sums of its first part (zero at an epoch start).
    Epoch e;
    e.start = e.step_start = Clock::now();
    e.loss_sum = state_.epoch_loss_sum;
    e.correct = state_.epoch_correct;
    e.seen = state_.epoch_seen;
    if (!train_epoch(e)) return stopped();
    end_epoch(e);
  }
  return finish();
} catch (const Interrupted& e) {
  // A signal seen while waiting for data or evaluating (core/interrupt.h; on several ranks
  // raised by all of them together): the state is that after the last step, so the checkpoint
  // resumes exactly.
  progress_.message(e.what());
  return stopped();
}

bool Trainer::train_epoch(Epoch& e) {
  // A budget may end the run inside an epoch: the loop stops at the planned step count.
  while (state_.global_step < total_steps_) {
    auto batch = loader_->next();
    if (!batch) break;
    train_step(*batch, e);
    if (stop_all_ || (o_.stop_after_steps > 0 && state_.global_step >= o_.stop_after_steps))
      return false;
    follow_budget(e);
  }
  return true;
}

void Trainer::train_step(const data::Batch& batch, Epoch& e) {
  e.wait += batch.wait_seconds;
  const double lr = optimizer_->param_groups()[0].lr;
  double local[2] = {0, 0};
  const Tensor loss_sum = forward_loss(batch, local);
  const StepTotals totals = agree_on_step(local);
  stop_all_ = totals.stop;
  update(loss_sum, batch.global_size);
  log_step(e, totals, batch.global_size, lr);
}

Tensor Trainer::forward_loss(const data::Batch& batch, double local[2]) {
  // n samples here, of the global batch's; a rank may have none in a short last batch.
  const auto n = static_cast<std::int64_t>(batch.labels.size());
  optimizer_->zero_grad();
  if (n == 0) return Tensor();
  Tensor logits, loss_sum;
  {
    // The forward pass under autocast: each weight is cast to bf16 once per step, and
    // backward (outside the guard) uses the casts the forward saved. Dropout and drop path
    // draw each sample's masks from (seed, step, position in the global batch).
    AutocastGuard autocast(precision_.bf16());
    SampleStreams streams(
        hash_seed({o_.seed, kDropoutStream, static_cast<std::uint64_t>(state_.global_step)}),
        batch.first, n);
    logits = model_->forward(batch.images);
    loss_sum =
        batch.soft_targets.defined()
            ? cross_entropy_soft(logits, batch.soft_targets, Reduction::Sum)
            : cross_entropy(logits, labels_tensor(batch.labels), Reduction::Sum, o_.smoothing);
  }
  local[0] = loss_sum.item();
  const auto predicted = argmax_rows(logits);
  for (std::size_t i = 0; i < predicted.size(); ++i) local[1] += predicted[i] == batch.labels[i];
  return loss_sum;
}

Trainer::StepTotals Trainer::agree_on_step(const double local[2]) {
  // One exchange per step: every rank's loss sum, correct count and stop request, summed in
  // rank order (so every rank logs the same loss and stops at the same step).
  const double mine[3] = {local[0], local[1], stop_requested() ? 1.0 : 0.0};
  const std::vector<double> all =
      comm_.allgather(mine, fmt::format("the statistics of step {}", state_.global_step + 1));
  StepTotals t;
  std::vector<int> bad;
  for (int r = 0; r < comm_.size(); ++r) {
    t.loss_sum += all[3 * r];
    t.correct += all[3 * r + 1];
    t.stop = t.stop || all[3 * r + 2] > 0;
    if (!std::isfinite(all[3 * r])) bad.push_back(r);
  }
  if (!std::isfinite(t.loss_sum))
    throw dist::CollectiveError(fmt::format(
        "[train] the loss is {} at epoch {} step {}{}; stopping. The last good checkpoint is {}",
        t.loss_sum, state_.epoch + 1, state_.batch + 1,
        comm_.size() > 1 ? fmt::format(" (on rank {})", fmt::join(bad, ", ")) : "",
        fs::exists(last_path_) ? last_path_.string() : "(none yet)"));
  return t;
}

void Trainer::update(const Tensor& loss_sum, std::int64_t global_batch) {
  // The loss of the global batch is the mean over its samples: each rank's sum is scaled by
  // 1/global_batch, so the gradients summed over the ranks are the one-process mean's.
  if (loss_sum.defined()) loss_sum.backward(full({}, 1.0 / static_cast<double>(global_batch)));
  buckets_->allreduce(comm_,
                      fmt::format("the gradient allreduce of step {}", state_.global_step + 1));
  if (o_.clip_grad > 0) optim::clip_grad_norm_(model_->parameters(), o_.clip_grad);
  optimizer_->step();
  if (ema_) ema_->update();
  if (schedule_.per_step) {
    if (budget_)
      schedule_.per_step->set_epoch(
          std::llround(position_.advance(state_.global_step, total_steps_)));
    else
      schedule_.per_step->step();
  }
  ++state_.batch;
  ++state_.global_step;
}

void Trainer::log_step(Epoch& e, const StepTotals& totals, std::int64_t global_batch, double lr) {
  e.loss_sum += totals.loss_sum;
  e.correct += static_cast<std::int64_t>(totals.correct);
  e.seen += global_batch;
  e.seen_here += global_batch;
  state_.epoch_loss_sum = e.loss_sum;
  state_.epoch_correct = e.correct;
  state_.epoch_seen = e.seen;
  const double epoch_elapsed = seconds_since(e.start);
  const StepStats st{state_.batch,
                     e.loss_sum / static_cast<double>(e.seen),
                     static_cast<double>(e.correct) / static_cast<double>(e.seen),
                     lr,
                     static_cast<double>(e.seen_here) / epoch_elapsed,
                     e.wait / epoch_elapsed};
  progress_.update(st);
  if (metrics_ && state_.global_step % o_.log_every == 0)
    metrics_->add({{"type", "step"},
                   {"epoch", state_.epoch + 1},
                   {"step", state_.batch},
                   {"global_step", state_.global_step},
                   {"loss", totals.loss_sum / static_cast<double>(global_batch)},
                   {"lr", lr},
                   {"images_per_sec", st.images_per_sec},
                   {"data_wait", st.data_wait_fraction},
                   {"elapsed_seconds", elapsed()}});
}

// With --time-budget, times the step and re-sizes the schedule now and then (a schedule
// re-sized at every step would wobble), but at once when even one more step would not fit.
void Trainer::follow_budget(Epoch& e) {
  if (!planner_) return;
  const auto now = Clock::now();
  planner_->record_step(std::chrono::duration<double>(now - e.step_start).count());
  e.step_start = now;
  if (!planner_->ready()) return;
  const std::int64_t plan =
      agree_on(planner_->plan(elapsed(), state_.global_step, state_.epoch + 1));
  ++steps_since_plan_;
  if (plan <= state_.global_step || !planned_ || steps_since_plan_ >= replan_every_) {
    resize_schedule(plan);
    planned_ = true;
    steps_since_plan_ = 0;
  }
}

std::int64_t Trainer::agree_on(std::int64_t steps) {
  if (comm_.size() == 1) return steps;
  std::array<std::uint8_t, sizeof steps> bytes;
  std::memcpy(bytes.data(), &steps, sizeof steps);
  comm_.broadcast(bytes, 0, fmt::format("the budget plan after step {}", state_.global_step));
  std::memcpy(&steps, bytes.data(), sizeof steps);
  return steps;
}

// Re-sizes the per-step schedule to `total` steps, at the current step.
void Trainer::resize_schedule(std::int64_t total) {
  if (total == total_steps_) return;
  const std::int64_t before = total_steps_;
  total_steps_ = total;
  if (!schedule_.per_step) return;  // plateau does not depend on the length
  schedule_ = make_schedule(o_, *optimizer_, steps_per_epoch_, total_steps_);
  position_.replan(before, warmup_steps(o_, steps_per_epoch_, before), total_steps_,
                   warmup_steps(o_, steps_per_epoch_, total_steps_), state_.global_step);
  schedule_.per_step->set_epoch(std::llround(position_.value()));
}

// Each rank evaluates its share of the test batches; the sums are reduced in rank order. A stop
// request ends the evaluation: on one process within a batch (predict_split), on several ranks
// once every rank has evaluated its share, when the exchanged sums show that some rank has one,
// so that all ranks stop together (stopped() saves the state after the last step).
Trainer::Evaluation Trainer::evaluate() {
  const auto start = Clock::now();
  const data::Dataset& split = comm_.size() > 1 ? test_shard_ : data_.test;
  const auto workers = static_cast<int>(o_.workers);
  // (loss sum, correct) of the weights, then of the EMA's, then the stop request
  double local[5] = {0, 0, 0, 0, 0};
  auto run = [&](models::VisionTransformer& model, double* out) {
    const SplitPredictions p =
        predict_split(model, info_, split, o_.batch_size, workers, precision_.bf16(), tta_);
    out[0] = p.loss * static_cast<double>(p.labels.size());
    for (std::size_t i = 0; i < p.labels.size(); ++i) out[1] += p.predicted[i] == p.labels[i];
  };
  run(*model_, local);
  if (ema_) {
    ema_->copy_to(ema_model_->state_dict());
    run(*ema_model_, local + 2);
  }
  local[4] = stop_requested() ? 1.0 : 0.0;
  const auto sum = dist::sum_over_ranks(
      comm_, local, fmt::format("the evaluation after step {}", state_.global_step));
  if (sum[4] > 0) throw Interrupted("[train] stopped by a signal during the evaluation");
  const auto total = static_cast<double>(data_.test.size());
  Evaluation ev;
  ev.loss = total > 0 ? sum[0] / total : 0.0;
  ev.accuracy = total > 0 ? sum[1] / total : 0.0;
  if (ema_) {
    ev.loss_ema = total > 0 ? sum[2] / total : 0.0;
    ev.accuracy_ema = total > 0 ? sum[3] / total : 0.0;
  }
  ev.seconds = seconds_since(start);
  return ev;
}

// The epoch's record (evaluated every --eval-every epochs and after the last), checkpoints
// and curves.
void Trainer::end_epoch(Epoch& e) {
  const double epoch_seconds = std::max(seconds_since(e.start), 1e-9);
  train_seconds_ += epoch_seconds;
  images_total_ += e.seen_here;
  // At an epoch end the plan is made again before deciding whether this epoch is the last.
  if (planner_ && planner_->ready()) {
    resize_schedule(agree_on(planner_->plan(elapsed(), state_.global_step, state_.epoch + 1)));
    steps_since_plan_ = 0;
  }
  const bool last_epoch = state_.global_step >= total_steps_;
  const double train_loss = e.seen ? e.loss_sum / static_cast<double>(e.seen) : 0.0;
  const double train_accuracy =
      e.seen ? static_cast<double>(e.correct) / static_cast<double>(e.seen) : 0.0;
  const double images_per_sec = static_cast<double>(e.seen_here) / epoch_seconds;
  nlohmann::json record{{"type", "epoch"},
                        {"epoch", state_.epoch + 1},
                        {"global_step", state_.global_step},
                        {"train_loss", train_loss},
                        {"train_accuracy", train_accuracy},
                        {"lr", optimizer_->param_groups()[0].lr},
                        {"epoch_seconds", epoch_seconds},
                        {"images_per_sec", images_per_sec},
                        {"data_wait_seconds", e.wait}};
  if (budget_) record["planned_steps"] = total_steps_;
  std::string line =
      fmt::format("epoch {}/{}: train loss {:.4f} acc {:.2f}% ({:.0f} img/s, {})", state_.epoch + 1,
                  planned_epochs(), train_loss, 100 * train_accuracy, images_per_sec,
                  format_duration(epoch_seconds));
  const bool is_best =
      ((state_.epoch + 1) % o_.eval_every == 0 || last_epoch) && evaluate_epoch(record, line);
  record["elapsed_seconds"] = elapsed();
  if (budget_)
    line += fmt::format(" [{} of {}]", format_duration(elapsed()), format_duration(*budget_));
  const auto end_start = Clock::now();
  if (metrics_) {
    metrics_->add(record);
    metrics_->flush();
  }
  checkpoint_epoch(is_best);
  if (comm_.is_root()) write_curves_png(run_dir_, run_dir_ / "curves.png");
  if (planner_) planner_->record_epoch_end(seconds_since(end_start));
  progress_.finish_epoch(line);
}

// Evaluates the test set at an epoch end, adds the results to the epoch's record and line, and
// says whether this is the best evaluation so far.
bool Trainer::evaluate_epoch(nlohmann::json& record, std::string& line) {
  const Evaluation ev = evaluate();
  if (planner_) planner_->record_eval(ev.seconds);
  record["test_loss"] = ev.loss;
  record["test_accuracy"] = ev.accuracy;
  if (ema_) {
    record["test_loss_ema"] = ev.loss_ema;
    record["test_accuracy_ema"] = ev.accuracy_ema;
  }
  record["eval_seconds"] = ev.seconds;
  result_.final_accuracy = ev.accuracy;
  result_.final_accuracy_ema = ev.accuracy_ema;
  // The best checkpoint is the best of either weights (it holds both).
  const bool is_best = ev.best() > state_.best_accuracy;
  if (is_best) state_.best_accuracy = ev.best(), state_.best_epoch = state_.epoch + 1;
  line += fmt::format(" | test loss {:.4f} acc {:.2f}%", ev.loss, 100 * ev.accuracy);
  if (ema_)
    line += fmt::format(" | EMA loss {:.4f} acc {:.2f}%", ev.loss_ema, 100 * ev.accuracy_ema);
  line += fmt::format(" (best {:.2f}%)", 100 * state_.best_accuracy);
  if (schedule_.plateau) schedule_.plateau->step(ev.accuracy);
  return is_best;
}

// The checkpoint describes the state after this epoch: the next epoch, batch 0.
void Trainer::checkpoint_epoch(bool is_best) {
  ++state_.epoch;
  state_.batch = 0;
  state_.epoch_loss_sum = 0;
  state_.epoch_correct = 0;
  state_.epoch_seen = 0;
  save_last();
  if (is_best && comm_.is_root())
    save_checkpoint(best_path_.string(), *model_, info_, *optimizer_, state_, ema_.get());
  --state_.epoch;
}

// Rank 0 writes; every rank first checks that all hold the same weights (they take the same
// steps from the same sums, so a difference means a rank went wrong: better stop than save).
void Trainer::save_last() {
  if (comm_.size() > 1) {
    std::uint64_t h = 0;
    for (const auto& [name, t] : model_->state_dict()) {
      const Tensor c = t.is_contiguous() ? t : copy_contiguous(t);
      h = dist::hash_bytes(c.raw_data(),
                           static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype()), h);
    }
    dist::require_same(comm_, h, fmt::format("the weights after step {}", state_.global_step));
  }
  if (!comm_.is_root()) return;
  state_.rng = default_generator().state();
  state_.scheduler =
      schedule_.per_step ? schedule_.per_step->state_dict() : schedule_.plateau->state_dict();
  state_.elapsed_seconds = elapsed();
  state_.planned_steps = budget_ ? total_steps_ : 0;
  state_.schedule_position = budget_ ? position_.value() : static_cast<double>(state_.global_step);
  save_checkpoint(last_path_.string(), *model_, info_, *optimizer_, state_, ema_.get());
}

// ---- the end of a run ----

TrainResult Trainer::stopped() {
  if (metrics_) metrics_->flush();
  save_last();
  // A stopped job ends with exit code 130, and mpirun ends the whole job once one rank has
  // exited with it: the others leave only after rank 0 has written the checkpoint.
  if (comm_.size() > 1) {
    const double written = 1;
    comm_.allgather(std::span<const double>(&written, 1), "the checkpoint written at the stop");
  }
  progress_.message(
      fmt::format("stopped at epoch {} step {}; checkpoint saved to {}. Resume with --resume {}",
                  state_.epoch + 1, state_.batch, last_path_.string(), run_dir_.string()));
  result_.interrupted = true;
  result_.wall_seconds = elapsed();
  return result_;
}

// The weights file (the better of the raw and the averaged weights) and the summary record.
TrainResult Trainer::finish() {
  if (result_.final_accuracy < 0 && metrics_) {
    // Nothing was evaluated here: the resumed run had already finished its last epoch.
    const nlohmann::json last = metrics_->last_evaluation();
    if (last.is_object()) {
      result_.final_accuracy = last.value("test_accuracy", -1.0);
      result_.final_accuracy_ema = last.value("test_accuracy_ema", -1.0);
    }
  }
  const bool use_ema = ema_ && result_.final_accuracy_ema > result_.final_accuracy;
  if (use_ema) ema_->copy_to(ema_model_->state_dict());
  result_.model_weights = use_ema ? "ema" : "raw";
  result_.best_accuracy = state_.best_accuracy;
  result_.wall_seconds = elapsed();
  result_.images_per_sec =
      train_seconds_ > 0 ? static_cast<double>(images_total_) / train_seconds_ : 0;
  if (!comm_.is_root()) return result_;
  save_model_weights((run_dir_ / "model.safetensors").string(), use_ema ? *ema_model_ : *model_,
                     info_);
  if (ema_)
    progress_.message(fmt::format(
        "model.safetensors holds the {} weights: final test accuracy {:.2f}% (EMA) vs {:.2f}% "
        "(raw)",
        use_ema ? "EMA" : "raw", 100 * result_.final_accuracy_ema, 100 * result_.final_accuracy));
  nlohmann::json summary{{"type", "summary"},
                         {"global_step", state_.global_step},
                         {"epochs", state_.epoch},
                         {"final_accuracy", result_.final_accuracy},
                         {"best_accuracy", result_.best_accuracy},
                         {"best_epoch", state_.best_epoch},
                         {"model_weights", result_.model_weights},
                         {"train_images_per_sec", result_.images_per_sec},
                         {"elapsed_seconds", result_.wall_seconds}};
  if (ema_) summary["final_accuracy_ema"] = result_.final_accuracy_ema;
  if (budget_) summary["time_budget_seconds"] = *budget_;
  metrics_->add(summary);
  metrics_->flush();
  // An accuracy is -1 when nothing says what it was (a resumed finished run whose metrics.jsonl
  // lost its evaluations).
  const auto percent = [](double accuracy) {
    return accuracy < 0 ? std::string("unknown") : fmt::format("{:.2f}%", 100 * accuracy);
  };
  progress_.message(fmt::format(
      "done in {}{}: best test accuracy {} (epoch {}), final {}, {:.0f} train images/s\nrun "
      "folder: {}",
      format_duration(result_.wall_seconds),
      budget_ ? fmt::format(" (budget {})", describe_duration(*budget_)) : "",
      percent(result_.best_accuracy), state_.best_epoch,
      percent(use_ema ? result_.final_accuracy_ema : result_.final_accuracy),
      result_.images_per_sec, run_dir_.string()));
  return result_;
}

}  // namespace pw::app
