// `vit train`: the command-line face of apps/train/trainer.h.
#pragma once
#include <CLI/CLI.hpp>

namespace pw::app {

// Declares `vit train` and its flags; its work exits 130 when a signal stopped the run.
void add_train_command(CLI::App& app);

}  // namespace pw::app
