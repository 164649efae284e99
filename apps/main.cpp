// `vit`: train, evaluate and inspect Vision Transformers on CIFAR-10, CIFAR-100 and image folders.
// Exit codes: 0 success, 1 runtime error (bad file, bad data, non-finite loss), 2 usage error,
// 130 stopped by a signal after saving a checkpoint. Under mpirun (dist/), an error on any rank
// is printed with the rank named and ends the whole job with exit code 1.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <set>

#include "apps/commands/commands.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "data/locate.h"
#include "dist/communicator.h"

int main(int argc, char** argv) {
  // MPI starts before anything else reads argv, and stops after the command has returned; an
  // error ends the job from inside the Session (report_fatal), never by unwinding out of it.
  std::optional<pw::dist::Session> session;
  try {
    session.emplace(&argc, &argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  // Where make train finds CIFAR-10 and its download script: the checkout vit was built from.
  pw::data::set_repository_dir(PATCHWORK_SOURCE_DIR);
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
  pw::app::add_allreduce_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = pw::dist::world().is_root() ? app.exit(e) : (e.get_exit_code() != 0);
    return code == 0 ? 0 : 2;
  }
  try {
    const std::set<std::string> parallel{"train", "bench", "allreduce"};
    const std::string name = app.get_subcommands().at(0)->get_name();
    PW_CHECK(pw::dist::world().size() == 1 || parallel.count(name),
             "[dist] `vit {}` runs on one process; under mpirun with several ranks only train, "
             "bench and allreduce run",
             name);
    return pw::app::run_chosen_command().value_or(0);
  } catch (const pw::Interrupted& e) {  // a signal before anything was worth saving
    fmt::print(stderr, "{}\n", e.what());
    if (pw::dist::world().size() > 1) pw::dist::world().abort(130);  // no rank left waiting
    return 130;
  } catch (const std::exception& e) {
    return pw::dist::report_fatal(e);
  }
}
