#include "apps/colormap.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pw::app {
namespace {

std::uint8_t to_byte(double x) {
  return static_cast<std::uint8_t>(std::lround(std::clamp(x, 0.0, 1.0) * 255.0));
}

// matplotlib's jet: piecewise-linear ramps of red, green and blue.
Rgb jet(double v) {
  auto ramp = [v](double center) { return std::clamp(1.5 - std::abs(4.0 * v - center), 0.0, 1.0); };
  return {to_byte(ramp(3.0)), to_byte(ramp(2.0)), to_byte(ramp(1.0))};
}

// viridis, interpolated linearly between nine of matplotlib's table entries (at i / 8).
Rgb viridis(double v) {
  static constexpr double kStops[9][3] = {
      {0.267004, 0.004874, 0.329415}, {0.277018, 0.185228, 0.489898},
      {0.230341, 0.344074, 0.557089}, {0.172719, 0.448791, 0.557885},
      {0.127568, 0.566949, 0.550556}, {0.120638, 0.683428, 0.482660},
      {0.297178, 0.797787, 0.368461}, {0.622171, 0.878364, 0.183295},
      {0.993248, 0.906157, 0.143936}};
  const double x = v * 8.0;
  const int i = std::min(static_cast<int>(x), 7);
  const double t = x - i;
  Rgb out{};
  for (int c = 0; c < 3; ++c)
    out[static_cast<std::size_t>(c)] = to_byte(kStops[i][c] * (1 - t) + kStops[i + 1][c] * t);
  return out;
}

}  // namespace

Rgb colormap(const std::string& name, double v) {
  v = std::isfinite(v) ? std::clamp(v, 0.0, 1.0) : 0.0;
  if (name == "jet") return jet(v);
  if (name == "viridis") return viridis(v);
  fail("[colormap] unknown colour map '{}' (choose jet or viridis)", name);
}

std::vector<std::string> colormap_names() {
  return {"jet", "viridis"};
}

}  // namespace pw::app
