#include "apps/commands/train.h"

#include <memory>

#include "apps/commands/command.h"
#include "apps/train/trainer.h"

namespace pw::app {

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* sub = app.add_subcommand("train", "Train a ViT on CIFAR-10");
  add_train_flags(*sub, *o);
  when_chosen(*sub, [o, sub] {
    const TrainOptions opts = merge_resume_options(*o, *sub);
    const TrainResult r = train(opts);
    return r.interrupted && opts.stop_after_steps == 0 ? 130 : 0;
  });
}

}  // namespace pw::app
