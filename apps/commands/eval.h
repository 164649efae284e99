// `vit eval`: test accuracy, per-class accuracy and the confusion matrix of a weights file.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace pw::app {

struct EvalOptions {
  std::string weights;
  std::string data;
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

// Evaluates on the CIFAR-10 test split and prints the report to stdout.
EvalReport run_eval(const EvalOptions& o);
// Declares `vit eval` and its flags.
void add_eval_command(CLI::App& app);

}  // namespace pw::app
