#include "apps/commands/train.h"

#include <memory>

#include "apps/commands/command.h"
#include "apps/train/recipes.h"
#include "apps/train/trainer.h"
#include "dist/communicator.h"

namespace pw::app {

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* sub = app.add_subcommand(
      "train", "Train a ViT on CIFAR-10, CIFAR-100 or an image folder (--dataset)");
  add_train_flags(*sub, *o);
  sub->footer(recipes_help());
  when_chosen(*sub, [o, sub] {
    TrainOptions given = *o;
    if (!given.recipe.empty() && given.resume.empty())
      apply_recipe(given, *sub, find_recipe(given.recipe));
    else if (!given.recipe.empty() && dist::world().is_root())
      fmt::print(
          "note: --recipe is not applied on --resume: the run's args.json holds the "
          "values it resolved to\n");
    const TrainOptions opts = merge_resume_options(given, *sub);
    const TrainResult r = train(opts);
    return r.interrupted && opts.stop_after_steps == 0 ? 130 : 0;
  });
}

}  // namespace pw::app
