// `vit`: train, evaluate and inspect Vision Transformers on CIFAR-10.
// Exit codes: 0 success, 1 runtime error (bad file, bad data, non-finite loss), 2 usage error,
// 130 stopped by a signal after saving a checkpoint.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "apps/bench.h"
#include "apps/commands/commands.h"
#include "apps/eval.h"
#include "apps/train/trainer.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"vit: Vision Transformers on CIFAR-10, trained on the CPU with patchwork"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");

  pw::app::TrainOptions train_opts;
  CLI::App* train = app.add_subcommand("train", "Train a ViT on CIFAR-10");
  pw::app::add_train_flags(*train, train_opts);

  pw::app::EvalOptions eval_opts;
  CLI::App* eval = app.add_subcommand("eval", "Test accuracy, per-class accuracy and confusion matrix");
  eval->option_defaults()->always_capture_default();
  eval->add_option("--weights", eval_opts.weights, "model.safetensors or a checkpoint")
      ->required()
      ->check(CLI::ExistingFile);
  eval->add_option("--data", eval_opts.data, "CIFAR-10 folder or .tar.gz (default: searched)");
  eval->add_option("--limit-test", eval_opts.limit_test, "Use only the first N test images (0: all)")
      ->check(CLI::NonNegativeNumber);
  eval->add_option("-b,--batch-size", eval_opts.batch_size, "Batch size")->check(CLI::PositiveNumber);
  eval->add_option("--threads", eval_opts.threads, "Compute threads (0: all cores)")->check(CLI::NonNegativeNumber);
  eval->add_option("--save-logits", eval_opts.save_logits, "Write the logits and labels to this .safetensors file");

  pw::app::BenchOptions bench_opts;
  CLI::App* bench = app.add_subcommand("bench", "Training and inference throughput against the sgemm peak");
  bench->option_defaults()->always_capture_default();
  bench->add_option("--preset", bench_opts.preset, "Model preset")->check(CLI::IsMember({"nano", "lite", "small"}));
  bench->add_option("--model", bench_opts.model_overrides, "Override a model config field, key=value");
  bench->add_option("-b,--batch-size", bench_opts.batch_size, "Batch size")->check(CLI::PositiveNumber);
  bench->add_option("--threads", bench_opts.threads, "Compute threads (0: all cores)")->check(CLI::NonNegativeNumber);
  bench->add_option("--steps", bench_opts.steps, "Timed steps")->check(CLI::PositiveNumber);
  bench->add_option("--warmup", bench_opts.warmup, "Untimed steps first")->check(CLI::NonNegativeNumber);
  bench->add_flag("--json", bench_opts.json, "One JSON line instead of a table");

  pw::app::add_predict_command(app);
  pw::app::add_attention_command(app);
  pw::app::add_patches_command(app);
  pw::app::add_summary_command(app);
  pw::app::add_plot_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    if (*train) {
      const auto opts = pw::app::merge_resume_options(train_opts, *train);
      const auto result = pw::app::train(opts);
      return result.interrupted && opts.stop_after_steps == 0 ? 130 : 0;
    }
    if (*bench) {
      pw::app::run_bench(bench_opts);
      return 0;
    }
    if (*eval) {
      pw::app::run_eval(eval_opts);
      return 0;
    }
    if (pw::app::run_chosen_command()) return 0;
  } catch (const pw::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
