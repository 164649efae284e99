// `vit train`: the training loop with its run folder, checkpoints, exact resume, signals.
//
// Trainer reads top to bottom as a run goes: the constructor sets the run up (data, the
// checkpoint to resume from, model, optimizer, schedule, EMA, run folder, loader, time budget),
// run()
// trains epoch by epoch, and each epoch is train_epoch() (steps), evaluate() and end_epoch()
// (metrics, checkpoints, curves); finish() writes the weights file and the summary.
//
// Under mpirun every rank runs a Trainer over the same data and model (data parallelism,
// dist/): each takes its share of every global batch (--batch-size), the gradients are summed
// over the ranks, and every rank takes the same optimizer step; the evaluation is split across
// the ranks and reduced; rank 0 alone prints and writes the run folder. Everything random is
// drawn per sample, so a run computes the same model on any number of ranks up to float32
// summation order (README, docs/distributed.md).
#pragma once
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "apps/evaluate.h"
#include "apps/precision.h"
#include "apps/train/budget.h"
#include "apps/train/metrics_log.h"
#include "apps/train/options.h"
#include "apps/train/progress.h"
#include "apps/train/schedule.h"
#include "apps/weights.h"
#include "core/interrupt.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/buckets.h"
#include "dist/communicator.h"
#include "models/vit.h"
#include "optim/ema.h"

namespace pw::app {

struct TrainResult {
  std::string run_dir;
  double best_accuracy = -1;
  double final_accuracy = -1;
  double final_accuracy_ema = -1;     // -1 without --model-ema
  std::string model_weights = "raw";  // what model.safetensors holds: "raw" or "ema"
  double wall_seconds = 0;
  double images_per_sec = 0;
  bool interrupted = false;  // stopped by a signal or --stop-after-steps, with a checkpoint
};

// Runs training as configured, as one rank of `comm`'s job; throws pw::Error on bad input or a
// non-finite loss (a dist::CollectiveError when every rank raises it at once).
TrainResult train(TrainOptions options, dist::Communicator& comm = dist::world());

class Trainer {
 public:
  // Validates the options and sets the run up; errors name the flag or file at fault.
  explicit Trainer(TrainOptions options, dist::Communicator& comm = dist::world());
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  ~Trainer();
  TrainResult run();

 private:
  using Clock = std::chrono::steady_clock;
  // The running sums of the epoch in progress.
  struct Epoch {
    Clock::time_point start, step_start;
    double loss_sum = 0, wait = 0;
    std::int64_t correct = 0, seen = 0, seen_here = 0;  // seen_here: by this process
  };
  // One evaluation of the test set: the weights, and the model EMA's when the run keeps one.
  struct Evaluation {
    double loss = 0, accuracy = -1;
    double loss_ema = 0, accuracy_ema = -1;  // accuracy_ema < 0: no EMA
    double seconds = 0;
    double best() const { return std::max(accuracy, accuracy_ema); }
  };

  void load_data();
  void check_ranks_agree();
  void open_run();
  void build_model();
  void describe_model(const LoadedModel* init);
  void load_init(const LoadedModel& init);
  void restore_resumed();
  void make_ema();
  models::ViTConfig model_config(const LoadedModel* init) const;
  void start_loader();
  void plan_budget();
  // Trains until the epoch's last batch or the planned step count; false when a stop was
  // requested (the checkpoint is then saved).
  bool train_epoch(Epoch& e);
  // One optimizer step: forward_loss on this rank's share, agree_on_step with the other ranks,
  // update (backward, allreduce, optimizer, EMA, schedule), log_step.
  void train_step(const data::Batch& batch, Epoch& e);
  // The summed loss of this rank's samples (undefined with none) and its [loss, correct] sums.
  Tensor forward_loss(const data::Batch& batch, double local[2]);
  // The global batch's loss and correct count summed over the ranks, and whether any rank was
  // asked to stop; a non-finite loss on any rank ends the run naming the last checkpoint.
  struct StepTotals {
    double loss_sum = 0, correct = 0;
    bool stop = false;
  };
  StepTotals agree_on_step(const double local[2]);
  void update(const Tensor& loss_sum, std::int64_t global_batch);
  void log_step(Epoch& e, const StepTotals& totals, std::int64_t global_batch, double lr);
  void follow_budget(Epoch& e);
  Evaluation evaluate();
  void end_epoch(Epoch& e);
  bool evaluate_epoch(nlohmann::json& record, std::string& line);
  void checkpoint_epoch(bool is_best);
  void save_last();
  // Rank 0's step count for the schedule (with a budget, the plan is rank 0's to make).
  std::int64_t agree_on(std::int64_t steps);
  void resize_schedule(std::int64_t total);
  TrainResult stopped();
  TrainResult finish();
  double elapsed() const;
  std::int64_t planned_epochs() const;

  TrainOptions o_;
  dist::Communicator& comm_;
  // Ctrl-C and SIGTERM stop the run with a checkpoint (core/interrupt.h): on one process within
  // a batch wherever the run is; on several ranks at the next collective, all together.
  StopOnSignals signals_;
  const Clock::time_point t_start_;  // wall time counts from here, data loading included
  Progress progress_;
  PrecisionChoice precision_;
  Tta tta_;
  std::optional<double> budget_;

  data::Splits data_;
  data::Dataset test_shard_;  // this rank's test batches, on several ranks
  std::unique_ptr<data::Loader> loader_;
  std::int64_t steps_per_epoch_ = 0;
  // Without a budget the schedule spans --epochs; with one, it spans the planned step count,
  // provisionally --epochs until the first steps are measured.
  std::int64_t total_steps_ = 0;

  std::optional<LoadedModel> resumed_;  // until build_model() has taken its weights
  std::filesystem::path resumed_from_;
  TrainState state_;
  std::filesystem::path run_dir_, last_path_, best_path_;
  ModelInfo info_;
  std::unique_ptr<models::VisionTransformer> model_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<dist::GradientBuckets> buckets_;
  bool stop_all_ = false;  // some rank was asked to stop: every rank stops after this step
  Schedule schedule_;
  std::unique_ptr<optim::ModelEma> ema_;
  std::unique_ptr<models::VisionTransformer> ema_model_;  // evaluates the EMA's weights
  std::unique_ptr<MetricsLog> metrics_;                   // rank 0 only
  double elapsed_before_ = 0;  // wall time of earlier invocations of a resumed run

  std::optional<BudgetPlanner> planner_;
  SchedulePosition position_;  // the per-step schedule's, when a budget plans it
  std::int64_t replan_every_ = 1, steps_since_plan_ = 0;
  bool planned_ = false;

  TrainResult result_;
  std::int64_t images_total_ = 0;
  double train_seconds_ = 0;
};

// Resolves --resume: the saved args of the run are the base and the flags given explicitly
// on the command line (those of `given`) override them.
TrainOptions merge_resume_options(const TrainOptions& cli, const CLI::App& app);

// Sets the OpenMP and OpenBLAS thread counts (0 keeps the default: all cores).
void set_compute_threads(std::int64_t threads);

}  // namespace pw::app
