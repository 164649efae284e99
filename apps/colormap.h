// Colour maps for heat maps: matplotlib's "jet" and "viridis", sampled on [0, 1].
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pw::app {

using Rgb = std::array<std::uint8_t, 3>;

// The colour of v (clamped to [0, 1]) in the named map; throws pw::Error on an unknown name.
Rgb colormap(const std::string& name, double v);
// The names colormap() accepts.
std::vector<std::string> colormap_names();

}  // namespace pw::app
