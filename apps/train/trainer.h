// `vit train`: the training loop with its run folder, checkpoints, exact resume, signals.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "apps/train/options.h"
#include "models/vit.h"

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

// Runs training as configured; throws pw::Error on bad input or a non-finite loss.
TrainResult train(TrainOptions options);

// Resolves --resume: the saved args of the run are the base and the flags given explicitly
// on the command line (those of `given`) override them.
TrainOptions merge_resume_options(const TrainOptions& cli, const CLI::App& app);

// Sets the OpenMP and OpenBLAS thread counts (0 keeps the default: all cores).
void set_compute_threads(std::int64_t threads);

// Asks a running train() to stop at the next step, saving a checkpoint (signal-safe).
void request_stop();

}  // namespace pw::app
