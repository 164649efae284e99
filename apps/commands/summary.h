// `vit summary --preset lite` (or --weights FILE): every module with its output shape for one
// image and its parameter count, then the totals and the forward GFLOPs, as torchsummary.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/shape.h"
#include "models/vit.h"

namespace pw::app {

struct SummaryRow {
  std::string name;         // dotted, "" for the model itself
  std::string type;         // Module::type_name()
  int depth = 0;            // nesting level, 0 for the model
  Shape output;             // for a batch of one image
  std::int64_t params = 0;  // its own and its children's
};

struct ModelSummary {
  std::vector<SummaryRow> rows;  // in registration order, parents before children
  std::int64_t total_params = 0;
  double forward_flops = 0;  // per image
  Shape input;
};

// Every module of `model` with its output shape and parameter count. There are no forward
// hooks, so the shapes follow from each module's type, its parameters and the config (see
// summary.cpp); one real forward pass on a zero image checks them where it can.
ModelSummary summarize(models::VisionTransformer& model);

// The table, indented by depth, with modules deeper than max_depth left out (< 0: all).
std::string format_summary(const ModelSummary& s, int max_depth = -1);

// Declares `summary` with its flags on `app`.
void add_summary_command(CLI::App& app);

}  // namespace pw::app
