// `vit patches IMAGE --patch 4 --out grid.png`: the image cut into the patches a ViT embeds,
// drawn apart from each other.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>

#include "data/image.h"

namespace pw::app {

// The image's patch x patch tiles, each upscaled `scale` times (nearest), laid out in their
// grid with `gap` background pixels between neighbours. Sides must be multiples of `patch`.
data::Image patch_grid(const data::Image& image, int patch, int scale, int gap,
                       std::uint8_t fill = 255);

// Declares `patches` with its flags on `app`.
void add_patches_command(CLI::App& app);

}  // namespace pw::app
