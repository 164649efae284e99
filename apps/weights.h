// Model files: `model.safetensors` (timm names, with the config, input normalisation and class
// names in __metadata__) and training checkpoints (the same weights under "model.", plus the
// optimizer, scheduler, RNG and loop state, and the model EMA's averages under "ema." when the
// run keeps one), both written atomically.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "io/safetensors.h"
#include "models/vit.h"
#include "optim/ema.h"
#include "optim/optimizer.h"

namespace pw::app {

// How pixels become model inputs: scale to [0, 1], then per-channel (x - mean) / std.
using data::Normalization;

struct ModelInfo {
  models::ViTConfig config;
  Normalization normalization;
  std::vector<std::string> classes;
  // What the model was trained on and how its evaluation crops (the metadata's "data" entry, in
  // the spirit of timm's pretrained_cfg): "cifar10", "cifar100" or "folder"; for CIFAR-100 the
  // label set, "fine" or "coarse"; the centre-crop fraction of data::eval_transform; for a
  // folder without val/, the --val-split fraction and the seed that drew it. Files written
  // before these existed read as CIFAR-10 with crop_pct 1.
  std::string dataset = "cifar10";
  std::string labels = "fine";
  double crop_pct = 1.0;
  double val_split = 0.0;
  std::uint64_t seed = 0;
};

// Writes the model's state dict with its config, normalisation and class names.
void save_model_weights(const std::string& path, const models::VisionTransformer& model,
                        const ModelInfo& info);

// Everything a checkpoint restores besides the weights.
struct TrainState {
  std::int64_t epoch = 0;        // the epoch in progress
  std::int64_t batch = 0;        // the next batch of that epoch
  std::int64_t global_step = 0;  // optimizer steps taken
  double best_accuracy = -1;
  std::int64_t best_epoch = -1;
  Generator::State rng{};          // the default generator (dropout, drop path)
  std::string precision = "fp32";  // the GEMM arithmetic the run trains with (apps/precision.h)
  // Wall time of the run so far, over every invocation (a resumed run counts on from here).
  double elapsed_seconds = 0;
  // The step count the schedule is sized to when a --time-budget plans it (0 otherwise).
  std::int64_t planned_steps = 0;
  // Where that schedule stands, in steps of the plan (apps/train/budget.h, SchedulePosition).
  double schedule_position = 0;
  // The running sums of the epoch in progress (its train loss and accuracy), so that a run
  // resumed mid-epoch logs the same epoch record as an uninterrupted one.
  double epoch_loss_sum = 0;
  std::int64_t epoch_correct = 0;
  std::int64_t epoch_seen = 0;
  nlohmann::json scheduler;
  nlohmann::json to_json() const;
  static TrainState from_json(const nlohmann::json& j);
};

// `ema` (optional) adds the model EMA's averages and update count.
void save_checkpoint(const std::string& path, const models::VisionTransformer& model,
                     const ModelInfo& info, const optim::Optimizer& optimizer,
                     const TrainState& state, const optim::ModelEma* ema = nullptr);

// A weights file or a checkpoint, read back.
struct LoadedModel {
  std::string source;  // the file it came from, for error messages
  ModelInfo info;
  NamedTensors weights;  // timm names
  bool is_checkpoint = false;
  optim::OptimizerState optimizer;  // checkpoints only
  TrainState state;                 // checkpoints only
  NamedTensors ema;                 // checkpoints of runs with a model EMA: its averages
  nlohmann::json ema_state;         // and its scalars (ModelEma::state_scalars); else null
};
// Reads `path` (model.safetensors or a checkpoint); errors name the file and the problem.
LoadedModel load_model_file(const std::string& path);
// The same for a file's bytes held in memory; `source` names it in errors.
LoadedModel parse_model_file(std::span<const std::uint8_t> bytes, const std::string& source);
// Throws, naming `source` and the first tensor that differs, unless `weights` are exactly the
// tensors (names and shapes) of the model `config` describes. Checked before a model is built
// from a file's config, so that a config claiming a larger model than the file holds is an
// error before the model takes any memory.
void check_weights_fit(const models::ViTConfig& config, const NamedTensors& weights,
                       const std::string& source);
// Builds the model described by a loaded file (check_weights_fit first) and loads its weights.
std::unique_ptr<models::VisionTransformer> build_model(const LoadedModel& loaded);
// Loads weights into `model`, resizing the position embedding when the grids differ.
void load_weights_into(models::VisionTransformer& model, const NamedTensors& weights,
                       bool strict = true);
// Fine-tuning from `weights` (a model of `from_classes`) to `model` (of `to_classes`): when the
// head's tensors do not fit the model's (another class count), or `reset` asks for it, they are
// replaced in `weights` by the model's own freshly initialised ones, as timm drops the
// classifier when num_classes changes. Returns what happened to the head, for the log ("" when
// the head is kept and the classes are the same).
std::string prepare_head_for_finetuning(const models::VisionTransformer& model,
                                        NamedTensors& weights,
                                        const std::vector<std::string>& from_classes,
                                        const std::vector<std::string>& to_classes, bool reset);

}  // namespace pw::app
