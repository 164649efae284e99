// Line charts drawn with cairo: a framed plot area with "nice" ticks, grid lines, axis
// labels, a title and a legend, for the training curves of `vit plot`.
#pragma once
#include <cairo.h>

#include <array>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace pw::app {

struct Series {
  std::string label;
  std::array<double, 3> rgb{0, 0, 0};             // in [0, 1]
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in order
  double line_width = 2.0;
  double alpha = 1.0;
  bool markers = false;  // a dot at each point
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool integer_x = false;                 // x ticks at whole numbers only (epochs)
  std::string empty_message = "no data";  // shown when no series has a point
};

// Round tick positions covering [lo, hi]: about `target` of them, steps of 1, 2 or 5 x 10^k.
std::vector<double> nice_ticks(double lo, double hi, int target);

// Draws `chart` into the rectangle (x, y, width, height) of `cr`.
void draw_chart(cairo_t* cr, const Chart& chart, double x, double y, double width, double height);

// Draws the charts side by side on a white width x height canvas and writes it as PNG,
// atomically; errors name the file.
void write_charts_png(const std::filesystem::path& path, const std::vector<Chart>& charts,
                      int width, int height);

}  // namespace pw::app
