// `vit train --resume RUN` with arbitrary bytes as RUN/args.json: the saved options are merged
// and validated exactly as the command line's; options that pass must hold what the trainer
// divides by and sizes with, and their --model overrides and budget are read as the run will.
#include <cstdlib>

#include "apps/train/budget.h"
#include "apps/train/trainer.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pw;
  const auto run = fuzz::scratch_dir() / "run";
  std::filesystem::create_directories(run);
  fuzz::write_bytes(run / "args.json", std::span<const std::uint8_t>(data, size));
  fuzz::write_bytes(run / "checkpoint-last.safetensors", {});  // only its presence is checked
  CLI::App app;
  app::TrainOptions cli;
  app::add_train_flags(app, cli);
  app.parse(std::vector<std::string>{run.string(), "--resume"});  // CLI11 takes them last first
  return fuzz::expect_errors_only([&] {
    const app::TrainOptions o = app::merge_resume_options(cli, app);
    if (o.log_every < 1 || o.batch_size < 1 || o.eval_every < 1 || o.epochs < 1 || o.workers < 1 ||
        o.decay_epochs < 1)
      std::abort();  // accepted options the trainer would divide by zero with
    models::ViTConfig preset = models::vit_preset(o.preset);
    preset.dropout = o.dropout;
    preset.drop_path = o.drop_path;
    models::apply_overrides(preset, o.model);
    app::parse_time_budget(o.time_budget);
  });
}
