// Named training recipes: `vit train --recipe NAME` takes a recipe's flag values as its
// defaults, and any flag given on the command line overrides the recipe's value. The table is
// in recipes.cpp, written as the flags one would type.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "apps/train/options.h"

namespace pw::app {

struct Recipe {
  std::string name;
  std::string summary;             // one line for `vit train --help`
  std::vector<std::string> flags;  // as typed: "--lr=2e-3", "--model=stem=conv", "--model-ema"
};

// Every recipe, in the order `vit train --help` lists them.
const std::vector<Recipe>& recipes();
// The recipe called `name`; an unknown name is an error that lists the known ones.
const Recipe& find_recipe(const std::string& name);
// The recipes as the footer of `vit train --help`: name, summary and flags of each.
std::string recipes_help();

// Applies `recipe` to `o`, whose flags were parsed by `app`: each flag of the recipe that was
// not given on the command line takes the recipe's value. --model entries are the exception:
// the recipe's come first and the command line's after them, so that a key given on the
// command line wins (`--model depth=4` changes one field of a recipe's model). Sets o.recipe.
// A recipe flag that `vit train` does not know, or a bad value, is an error naming the recipe.
void apply_recipe(TrainOptions& o, const CLI::App& app, const Recipe& recipe);

}  // namespace pw::app
