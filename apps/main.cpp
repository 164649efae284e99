// `vit`: train, evaluate and inspect Vision Transformers on CIFAR-10, CIFAR-100 and image folders.
// Exit codes: 0 success, 1 runtime error (bad file, bad data, non-finite loss), 2 usage error,
// 130 stopped by a signal after saving a checkpoint.
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "apps/commands/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "vit: Vision Transformers on CIFAR-10, CIFAR-100 and image folders, trained on the CPU "
      "with patchwork"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");
  pw::app::add_train_command(app);
  pw::app::add_eval_command(app);
  pw::app::add_predict_command(app);
  pw::app::add_attention_command(app);
  pw::app::add_patches_command(app);
  pw::app::add_summary_command(app);
  pw::app::add_plot_command(app);
  pw::app::add_bench_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    return pw::app::run_chosen_command().value_or(0);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
