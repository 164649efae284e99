#include "apps/chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numbers>

#include "core/error.h"
#include "io/file_io.h"

namespace pw::app {
namespace {

constexpr const char* kFont = "DejaVu Sans";

void set_font(cairo_t* cr, double size, bool bold = false) {
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

double text_width(cairo_t* cr, const std::string& s) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  return e.x_advance;
}

// Text with its anchor at (x, y): ax = 0 left, 0.5 centred, 1 right; ay likewise from the
// baseline up (0 baseline, 0.5 middle of the capitals, 1 top of the capitals).
void draw_text(cairo_t* cr, const std::string& s, double x, double y, double ax, double ay) {
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  const double cap = fe.ascent * 0.72;  // roughly the height of a capital letter
  cairo_move_to(cr, x - ax * text_width(cr, s), y + ay * cap);
  cairo_show_text(cr, s.c_str());
}

// Labels precise enough to tell neighbouring ticks apart; compact scientific ("2.5e-4") for
// tiny steps such as learning rates.
std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-6) return "0";
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  if (decimals <= 3 && std::abs(v) < 1e5) return fmt::format("{:.{}f}", v, decimals);
  const int exponent = static_cast<int>(std::floor(std::log10(std::abs(v))));
  // As many mantissa digits as the step needs (1.05e-4 beside 1e-4), trailing zeros dropped.
  const int digits = std::max(0, exponent - static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  std::string mantissa = fmt::format("{:.{}f}", v / std::pow(10.0, exponent), digits);
  if (mantissa.find('.') != std::string::npos) {
    while (mantissa.ends_with("0")) mantissa.pop_back();
    if (mantissa.ends_with(".")) mantissa.pop_back();
  }
  return fmt::format("{}e{}", mantissa, exponent);
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
  // Widens a single value into a visible interval.
  void widen() {
    if (hi - lo > 1e-12 * std::max(1.0, std::abs(hi))) return;
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
};

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  PW_CHECK(std::isfinite(lo) && std::isfinite(hi) && hi > lo && target > 0,
           "[chart] bad tick range [{}, {}]", lo, hi);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(t);
  return ticks;
}

void draw_chart(cairo_t* cr, const Chart& chart, double x0, double y0, double width,
                double height) {
  Range xr, yr;
  for (const auto& s : chart.series)
    for (const auto& [px, py] : s.points)
      if (std::isfinite(px) && std::isfinite(py)) xr.add(px), yr.add(py);
  std::vector<double> xt, yt;
  double xstep = 1, ystep = 1;
  if (!xr.empty()) {
    xr.widen();
    yr.widen();
    // A little room around the data, so that curves and markers do not run along the frame.
    const double xpad = (xr.hi - xr.lo) * 0.03, ypad = (yr.hi - yr.lo) * 0.06;
    xr.lo -= xpad, xr.hi += xpad, yr.lo -= ypad, yr.hi += ypad;
    xt = nice_ticks(xr.lo, xr.hi, 6), yt = nice_ticks(yr.lo, yr.hi, 6);
    if (chart.integer_x && (xt.size() < 2 || xt[1] - xt[0] < 1)) {  // epochs 1, 2, ... not 1.2
      xt.clear();
      for (double t = std::ceil(xr.lo); t <= xr.hi; t += 1) xt.push_back(t);
    }
    xstep = xt.size() > 1 ? xt[1] - xt[0] : xr.hi - xr.lo;
    if (chart.integer_x) xstep = std::max(xstep, 1.0);
    ystep = yt.size() > 1 ? yt[1] - yt[0] : yr.hi - yr.lo;
  }
  // Margins leave room for the title above, the axis labels below and left, and the widest
  // y tick label.
  set_font(cr, 12.5);
  double tick_width = 0;
  for (double t : yt) tick_width = std::max(tick_width, text_width(cr, tick_label(t, ystep)));
  const double left = x0 + 40 + tick_width + 12, right = x0 + width - 22, top = y0 + 44,
               bottom = y0 + height - 58;
  set_font(cr, 17, true);
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  draw_text(cr, chart.title, (left + right) / 2, y0 + 26, 0.5, 0.5);

  cairo_set_line_width(cr, 1.0);
  if (xr.empty()) {
    cairo_rectangle(cr, left, top, right - left, bottom - top);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_stroke(cr);
    set_font(cr, 14);
    draw_text(cr, chart.empty_message, (left + right) / 2, (top + bottom) / 2, 0.5, 0.5);
    return;
  }
  auto sx = [&](double v) { return left + (v - xr.lo) / (xr.hi - xr.lo) * (right - left); };
  auto sy = [&](double v) { return bottom - (v - yr.lo) / (yr.hi - yr.lo) * (bottom - top); };

  // Grid, ticks and tick labels.
  set_font(cr, 12.5);
  for (double t : xt) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, std::round(sx(t)) + 0.5, top);
    cairo_line_to(cr, std::round(sx(t)) + 0.5, bottom);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_move_to(cr, std::round(sx(t)) + 0.5, bottom);
    cairo_line_to(cr, std::round(sx(t)) + 0.5, bottom + 5);
    cairo_stroke(cr);
    draw_text(cr, tick_label(t, xstep), sx(t), bottom + 20, 0.5, 0.0);
  }
  for (double t : yt) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, left, std::round(sy(t)) + 0.5);
    cairo_line_to(cr, right, std::round(sy(t)) + 0.5);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_move_to(cr, left - 5, std::round(sy(t)) + 0.5);
    cairo_line_to(cr, left, std::round(sy(t)) + 0.5);
    cairo_stroke(cr);
    draw_text(cr, tick_label(t, ystep), left - 9, sy(t), 1.0, 0.5);
  }
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  cairo_rectangle(cr, left + 0.5, top + 0.5, right - left, bottom - top);
  cairo_stroke(cr);

  // Axis labels: x centred below, y rotated along the left edge.
  set_font(cr, 14);
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  draw_text(cr, chart.x_label, (left + right) / 2, bottom + 44, 0.5, 0.0);
  cairo_save(cr);
  cairo_translate(cr, x0 + 22, (top + bottom) / 2);
  cairo_rotate(cr, -std::numbers::pi / 2);
  draw_text(cr, chart.y_label, 0, 0, 0.5, 0.5);
  cairo_restore(cr);

  // The curves, clipped to the plot area.
  cairo_save(cr);
  cairo_rectangle(cr, left, top, right - left, bottom - top);
  cairo_clip(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (const auto& s : chart.series) {
    cairo_set_source_rgba(cr, s.rgb[0], s.rgb[1], s.rgb[2], s.alpha);
    cairo_set_line_width(cr, s.line_width);
    bool pen_down = false;
    for (const auto& [px, py] : s.points) {
      if (!std::isfinite(px) || !std::isfinite(py)) {  // a gap in the curve, e.g. a NaN loss
        pen_down = false;
        continue;
      }
      if (pen_down)
        cairo_line_to(cr, sx(px), sy(py));
      else
        cairo_move_to(cr, sx(px), sy(py));
      pen_down = true;
    }
    cairo_stroke(cr);
    // A lone point draws no line, so it gets a marker.
    const bool lone = std::count_if(s.points.begin(), s.points.end(), [](const auto& p) {
                        return std::isfinite(p.first) && std::isfinite(p.second);
                      }) == 1;
    if (s.markers || lone)
      for (const auto& [px, py] : s.points) {
        if (!std::isfinite(px) || !std::isfinite(py)) continue;
        cairo_arc(cr, sx(px), sy(py), s.line_width + 1.5, 0, 2 * std::numbers::pi);
        cairo_fill(cr);
      }
  }
  cairo_restore(cr);

  // Legend: a swatch and the label of each series that has points, in a framed box.
  std::vector<const Series*> shown;
  for (const auto& s : chart.series)
    if (!s.points.empty() && !s.label.empty()) shown.push_back(&s);
  if (shown.empty()) return;
  set_font(cr, 12.5);
  double label_width = 0;
  for (const auto* s : shown) label_width = std::max(label_width, text_width(cr, s->label));
  const double row = 20, box_w = label_width + 46,
               box_h = row * static_cast<double>(shown.size()) + 8;
  // The corner that hides the fewest points (ties: top right, then bottom right, ...).
  const std::array<std::pair<double, double>, 4> corners{{{right - box_w - 8, top + 8},
                                                          {right - box_w - 8, bottom - box_h - 8},
                                                          {left + 8, top + 8},
                                                          {left + 8, bottom - box_h - 8}}};
  // Samples of the curves (8 along each segment) inside the box at (cx, cy).
  auto hidden_by = [&](double cx, double cy) {
    std::int64_t n = 0;
    for (const auto& s : chart.series)
      for (std::size_t i = 0; i < s.points.size(); ++i) {
        const auto [x1, y1] = s.points[i];
        const auto [x2, y2] = i + 1 < s.points.size() ? s.points[i + 1] : s.points[i];
        for (int k = 0; k < 8; ++k) {
          const double f = k / 8.0, px = sx(x1 + f * (x2 - x1)), py = sy(y1 + f * (y2 - y1));
          n += px >= cx - 4 && px <= cx + box_w + 4 && py >= cy - 4 && py <= cy + box_h + 4;
        }
      }
    return n;
  };
  double bx = corners[0].first, by = corners[0].second;
  std::int64_t fewest = std::numeric_limits<std::int64_t>::max();
  for (const auto& [cx, cy] : corners)
    if (const std::int64_t n = hidden_by(cx, cy); n < fewest) fewest = n, bx = cx, by = cy;
  cairo_rectangle(cr, bx, by, box_w, box_h);
  cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
  cairo_set_line_width(cr, 1.0);
  cairo_stroke(cr);
  for (std::size_t i = 0; i < shown.size(); ++i) {
    const Series& s = *shown[i];
    const double cy = by + 4 + row * (static_cast<double>(i) + 0.5);
    cairo_set_source_rgba(cr, s.rgb[0], s.rgb[1], s.rgb[2], std::max(s.alpha, 0.6));
    cairo_set_line_width(cr, std::max(s.line_width, 2.0));
    cairo_move_to(cr, bx + 8, cy);
    cairo_line_to(cr, bx + 32, cy);
    cairo_stroke(cr);
    if (s.markers) {
      cairo_arc(cr, bx + 20, cy, s.line_width + 1.5, 0, 2 * std::numbers::pi);
      cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    draw_text(cr, s.label, bx + 38, cy, 0.0, 0.5);
  }
}

void write_charts_png(const std::filesystem::path& path, const std::vector<Chart>& charts,
                      int width, int height) {
  PW_CHECK(!charts.empty() && width > 0 && height > 0, "[chart] nothing to draw into '{}'",
           path.string());
  std::unique_ptr<cairo_surface_t, void (*)(cairo_surface_t*)> surface(
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height), cairo_surface_destroy);
  std::unique_ptr<cairo_t, void (*)(cairo_t*)> cr(cairo_create(surface.get()), cairo_destroy);
  PW_CHECK(cairo_status(cr.get()) == CAIRO_STATUS_SUCCESS, "[chart] cannot draw '{}': {}",
           path.string(), cairo_status_to_string(cairo_status(cr.get())));
  cairo_set_source_rgb(cr.get(), 1, 1, 1);
  cairo_paint(cr.get());
  const double panel = static_cast<double>(width) / static_cast<double>(charts.size());
  for (std::size_t i = 0; i < charts.size(); ++i)
    draw_chart(cr.get(), charts[i], panel * static_cast<double>(i), 0, panel, height);
  cairo_surface_flush(surface.get());
  // Encoded in memory and written atomically: the trainer rewrites curves.png every epoch
  // while someone may be looking at it.
  std::vector<std::uint8_t> png;
  auto append = [](void* closure, const unsigned char* data, unsigned int length) {
    auto* out = static_cast<std::vector<std::uint8_t>*>(closure);
    out->insert(out->end(), data, data + length);
    return CAIRO_STATUS_SUCCESS;
  };
  const cairo_status_t st = cairo_surface_write_to_png_stream(surface.get(), append, &png);
  PW_CHECK(st == CAIRO_STATUS_SUCCESS, "[chart] cannot encode '{}': {}", path.string(),
           cairo_status_to_string(st));
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  write_file_atomic(path.string(), std::span<const std::uint8_t>(png));
}

}  // namespace pw::app
