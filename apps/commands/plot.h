// `vit plot RUN_DIR`: loss, accuracy and learning-rate curves of a training run, from its
// metrics.jsonl, as one PNG of three panels (also written by `vit train` after each epoch).
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

namespace pw::app {

// One {"type":"step",...} line of metrics.jsonl.
struct StepMetrics {
  std::int64_t global_step = 0;
  double loss = 0;
  double lr = 0;
};

// One {"type":"epoch",...} line; the test figures are absent when the epoch was not evaluated.
struct EpochMetrics {
  std::int64_t epoch = 0;
  std::int64_t global_step = 0;
  double train_loss = 0;
  double train_accuracy = 0;  // fraction in [0, 1]
  std::optional<double> test_loss, test_accuracy;
  std::optional<double> test_loss_ema, test_accuracy_ema;  // runs with --model-ema
};

struct MetricsHistory {
  std::vector<StepMetrics> steps;
  std::vector<EpochMetrics> epochs;
};

// Reads a metrics.jsonl file; errors name the file and line. Unknown record types are skipped.
MetricsHistory read_metrics(const std::filesystem::path& path);

// Draws the curves of run_dir/metrics.jsonl (or of run_dir itself when it is a file) into the
// PNG `out`: loss per step and per epoch, train/test accuracy per epoch (and the model EMA's
// test figures when the run keeps one), learning rate per step.
void write_curves_png(const std::filesystem::path& run_dir, const std::filesystem::path& out);

// Declares `plot` with its flags on `app`.
void add_plot_command(CLI::App& app);

}  // namespace pw::app
