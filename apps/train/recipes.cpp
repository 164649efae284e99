#include "apps/train/recipes.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace pw::app {

// The table. A recipe lists only flags, as typed on the command line, so that a reader sees
// the command it stands for and the flags' own validators check it. docs/recipes.md gives the
// measurements behind each value (what was tried, what won, what lost).
const std::vector<Recipe>& recipes() {
  static const std::vector<Recipe> table = {
      {"default",
       "the recipe of `make train`: best test accuracy within 30 minutes on two cores",
       {"--preset=nano",     "--model=stem=conv",   "--model=dim=128",   "--model=depth=2",
        "--model=heads=2",   "--model=mlp_dim=128", "--model=pool=attn", "--model=pos_embed=learn",
        "--time-budget=30m", "--batch-size=128",    "--opt=adamw",       "--lr=2e-3",
        "--min-lr=1e-5",     "--weight-decay=0.05", "--sched=cosine",    "--warmup-epochs=1",
        "--warmup-lr=1e-5",  "--smoothing=0.1",     "--augment=basic",   "--drop-path=0",
        "--tta=flip"}},
      {"long",
       "the recipe of `make train-long`: best test accuracy within 2.5 hours on two cores",
       {"--preset=nano",
        "--model=stem=conv",
        "--model=dim=128",
        "--model=depth=4",
        "--model=heads=4",
        "--model=mlp_dim=256",
        "--model=pool=attn",
        "--model=pos_embed=learn",
        "--time-budget=2.5h",
        "--batch-size=128",
        "--opt=adamw",
        "--lr=2e-3",
        "--min-lr=1e-5",
        "--weight-decay=0.05",
        "--sched=cosine",
        "--warmup-epochs=5",
        "--warmup-lr=1e-5",
        "--smoothing=0.1",
        "--augment=autoaugment",
        "--drop-path=0.1",
        "--tta=flip"}},
  };
  return table;
}

const Recipe& find_recipe(const std::string& name) {
  const auto& all = recipes();
  auto it = std::find_if(all.begin(), all.end(), [&](const Recipe& r) { return r.name == name; });
  if (it == all.end()) {
    std::vector<std::string> names;
    for (const auto& r : all) names.push_back(r.name);
    fail("[--recipe] unknown recipe '{}'; the recipes are: {}", name, fmt::join(names, ", "));
  }
  return *it;
}

std::string recipes_help() {
  std::string out =
      "Recipes (--recipe NAME; a flag given on the command line overrides the recipe's value):";
  for (const auto& r : recipes())
    out += fmt::format("\n  {:<9}{}\n  {:<9}{}", r.name, r.summary, "", fmt::join(r.flags, " "));
  return out;
}

void apply_recipe(TrainOptions& o, const CLI::App& app, const Recipe& recipe) {
  // Parse the recipe's flags as `vit train` would, into a fresh set of options.
  CLI::App parser;
  TrainOptions values;
  add_train_flags(parser, values);
  std::vector<std::string> args(recipe.flags.rbegin(), recipe.flags.rend());  // CLI11 pops
  try {
    parser.parse(args);
  } catch (const CLI::ParseError& e) {
    fail("[--recipe] recipe '{}': {}", recipe.name, e.what());
  }
  const nlohmann::json from_recipe = values;
  nlohmann::json merged = o;
  for (const CLI::Option* opt : parser.get_options()) {
    if (opt->count() == 0 || opt->get_lnames().empty()) continue;
    const std::string flag = opt->get_lnames().front();
    std::string key = flag;
    std::replace(key.begin(), key.end(), '-', '_');
    PW_CHECK(from_recipe.contains(key) && key != "recipe" && key != "resume",
             "[--recipe] recipe '{}': --{} cannot be part of a recipe", recipe.name, flag);
    const CLI::Option* given = app.get_option_no_throw("--" + flag);
    const bool on_command_line = given != nullptr && given->count() > 0;
    if (key == "model") {
      auto model = values.model;
      if (on_command_line) model.insert(model.end(), o.model.begin(), o.model.end());
      merged[key] = model;
    } else if (!on_command_line) {
      merged[key] = from_recipe[key];
    }
  }
  merged["recipe"] = recipe.name;
  o = merged.get<TrainOptions>();
}

}  // namespace pw::app
