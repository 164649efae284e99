// `vit eval`: test accuracy, per-class accuracy and the confusion matrix of a weights file.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace pw::app {

struct EvalOptions {
  std::string weights;
  // The data set (data/datasets.h); empty: the one the weights' metadata names. For an image
  // folder the test split is val/ or, as the model was trained, --val-split of train/ drawn by
  // --seed (both default to the metadata's values when negative).
  std::string dataset;
  std::string data;
  std::string cifar100_labels;  // empty: the metadata's
  double val_split = -1;
  std::int64_t seed = -1;
  std::int64_t cache_mb = 2048;
  std::int64_t workers = 1;
  std::int64_t limit_test = 0;
  std::int64_t batch_size = 256;
  std::int64_t threads = 0;
  std::string precision = "auto";  // apps/precision.h
  std::string tta = "none";        // test-time augmentation: none or flip (apps/evaluate.h)
  std::string save_logits;
  bool json = false;
};

struct EvalReport {
  double accuracy = 0;
  std::vector<double> per_class_accuracy;
  std::vector<std::vector<std::int64_t>> confusion;  // [true][predicted]
};

// Evaluates on the test split of the model's data set (CIFAR's test files or an image folder's
// val/) and prints the report to stdout.
EvalReport run_eval(const EvalOptions& o);
// Declares `vit eval` and its flags.
void add_eval_command(CLI::App& app);

}  // namespace pw::app
