// `vit attention --weights FILE IMAGE --out map.png`: where the classifier looks, as a heat map
// of the attention rollout (or of one layer's attention) over the upscaled image.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "apps/commands/rollout.h"
#include "data/image.h"
#include "models/vit.h"

namespace pw::app {

// Each block's attention probabilities for the one image of the last forward pass of `model`
// (run with keep_attention(true)).
std::vector<LayerAttention> layer_attentions(const models::VisionTransformer& model);

// The weight of each patch (grid x grid, row-major, sums to one): the rollout across all
// layers when layer < 0, else that layer's head-averaged attention.
std::vector<double> attention_patch_weights(const models::VisionTransformer& model, int layer);

// `image` upscaled `scale` times (nearest), with the patch weights (bilinear-upscaled and
// stretched to the full colour range) blended over it with opacity alpha.
data::Image attention_overlay(const data::Image& image, const std::vector<double>& weights,
                              int grid, int scale, const std::string& colormap_name, double alpha);

// Declares `attention` with its flags on `app`.
void add_attention_command(CLI::App& app);

}  // namespace pw::app
