#include "apps/commands/plot.h"

#include <fmt/format.h>

#include <array>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "apps/chart.h"
#include "apps/commands/command.h"
#include "core/error.h"
#include "io/file_io.h"

namespace pw::app {
namespace fs = std::filesystem;

namespace {

// Tableau colours, as matplotlib's defaults: blue for training, orange for test, green for LR.
constexpr std::array<double, 3> kBlue{0.122, 0.467, 0.706};
constexpr std::array<double, 3> kOrange{1.0, 0.498, 0.055};
constexpr std::array<double, 3> kGreen{0.173, 0.627, 0.173};
constexpr std::array<double, 3> kRed{0.839, 0.153, 0.157};

fs::path metrics_path(const fs::path& run_dir) {
  return fs::is_directory(run_dir) ? run_dir / "metrics.jsonl" : run_dir;
}

std::vector<Chart> curve_charts(const MetricsHistory& h) {
  Chart loss{"Loss", "step", "cross-entropy loss", {}, true, "no steps logged yet"};
  Series step_loss{"train loss (per logged step)", kBlue, {}, 1.2, 0.45, false};
  Series train_loss{"train loss (epoch mean)", kBlue, {}, 2.2, 1.0, true};
  Series test_loss{"test loss", kOrange, {}, 2.2, 1.0, true};
  Series test_loss_ema{"test loss (EMA)", kRed, {}, 2.2, 1.0, true};
  for (const auto& s : h.steps)
    step_loss.points.emplace_back(static_cast<double>(s.global_step), s.loss);
  for (const auto& e : h.epochs) {
    train_loss.points.emplace_back(static_cast<double>(e.global_step), e.train_loss);
    if (e.test_loss)
      test_loss.points.emplace_back(static_cast<double>(e.global_step), *e.test_loss);
    if (e.test_loss_ema)
      test_loss_ema.points.emplace_back(static_cast<double>(e.global_step), *e.test_loss_ema);
  }
  loss.series = {step_loss, train_loss, test_loss};
  if (!test_loss_ema.points.empty()) loss.series.push_back(test_loss_ema);

  Chart acc{"Accuracy", "epoch", "accuracy (%)", {}, true, "no epoch finished yet"};
  Series train_acc{"train", kBlue, {}, 2.2, 1.0, true};
  Series test_acc{"test", kOrange, {}, 2.2, 1.0, true};
  Series test_acc_ema{"test (EMA)", kRed, {}, 2.2, 1.0, true};
  for (const auto& e : h.epochs) {
    train_acc.points.emplace_back(static_cast<double>(e.epoch), 100 * e.train_accuracy);
    if (e.test_accuracy)
      test_acc.points.emplace_back(static_cast<double>(e.epoch), 100 * *e.test_accuracy);
    if (e.test_accuracy_ema)
      test_acc_ema.points.emplace_back(static_cast<double>(e.epoch), 100 * *e.test_accuracy_ema);
  }
  acc.series = {train_acc, test_acc};
  if (!test_acc_ema.points.empty()) acc.series.push_back(test_acc_ema);

  Chart lr{"Learning rate", "step", "learning rate", {}, true, "no steps logged yet"};
  Series lr_line{"", kGreen, {}, 2.0, 1.0, false};
  for (const auto& s : h.steps)
    lr_line.points.emplace_back(static_cast<double>(s.global_step), s.lr);
  lr.series = {lr_line};
  return {loss, acc, lr};
}

}  // namespace

MetricsHistory read_metrics(const fs::path& path) {
  PW_CHECK(fs::exists(path), "[plot] '{}' does not exist", path.string());
  std::istringstream in(read_text_file(path.string()));
  MetricsHistory h;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      const std::string type = j.value("type", "");
      // Missing numbers read as NaN, which the charts leave out, rather than failing the plot.
      auto number = [&](const char* key) {
        return j.contains(key) && j[key].is_number() ? j[key].get<double>()
                                                     : std::numeric_limits<double>::quiet_NaN();
      };
      if (type == "step") {
        h.steps.push_back({j.at("global_step").get<std::int64_t>(), number("loss"), number("lr")});
      } else if (type == "epoch") {
        EpochMetrics e{j.at("epoch").get<std::int64_t>(),
                       j.at("global_step").get<std::int64_t>(),
                       number("train_loss"),
                       number("train_accuracy"),
                       std::nullopt,
                       std::nullopt,
                       std::nullopt,
                       std::nullopt};
        if (j.contains("test_loss")) e.test_loss = number("test_loss");
        if (j.contains("test_accuracy")) e.test_accuracy = number("test_accuracy");
        if (j.contains("test_loss_ema")) e.test_loss_ema = number("test_loss_ema");
        if (j.contains("test_accuracy_ema")) e.test_accuracy_ema = number("test_accuracy_ema");
        h.epochs.push_back(e);
      }
    } catch (const nlohmann::json::exception& e) {
      fail("[plot] {}:{}: not a metrics record: {}", path.string(), lineno, e.what());
    }
  }
  PW_CHECK(!h.steps.empty() || !h.epochs.empty(), "[plot] '{}' holds no step or epoch records",
           path.string());
  return h;
}

void write_curves_png(const fs::path& run_dir, const fs::path& out) {
  write_charts_png(out, curve_charts(read_metrics(metrics_path(run_dir))), 1560, 480);
}

namespace {

struct PlotOptions {
  std::string run_dir;
  std::string out;
};

void run_plot(const PlotOptions& o) {
  PW_CHECK(fs::exists(o.run_dir), "[plot] run folder '{}' does not exist", o.run_dir);
  const fs::path out = o.out.empty()
                           ? (fs::is_directory(o.run_dir) ? fs::path(o.run_dir)
                                                          : fs::path(o.run_dir).parent_path()) /
                                 "curves.png"
                           : fs::path(o.out);
  write_curves_png(o.run_dir, out);
  fmt::print("curves of {} written to {}\n", metrics_path(o.run_dir).string(), out.string());
}

}  // namespace

void add_plot_command(CLI::App& app) {
  auto o = std::make_shared<PlotOptions>();
  CLI::App* sub =
      app.add_subcommand("plot", "Loss, accuracy and learning-rate curves of a run as a PNG");
  sub->option_defaults()->always_capture_default();
  sub->add_option("run_dir", o->run_dir, "Run folder (with metrics.jsonl) or a metrics.jsonl file")
      ->required();
  sub->add_option("-o,--out", o->out, "Output PNG (default: curves.png in the run folder)");
  when_chosen(*sub, [o] {
    run_plot(*o);
    return 0;
  });
}

}  // namespace pw::app
