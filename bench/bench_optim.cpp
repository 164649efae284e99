// The model EMA's update (optim/ema.h) over a whole ViT's parameters, once per training step.
// Counter: GB/s (the average read and written, the weights read) against the STREAM copy
// bandwidth of `stream` in bench_nn_ops.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "models/vit.h"
#include "optim/ema.h"

namespace pw::bench {
namespace {

void BM_model_ema_update(benchmark::State& state) {
  const std::vector<std::string> presets{"nano", "lite", "small"};
  const std::string& preset = presets[static_cast<std::size_t>(state.range(0))];
  Generator g(0);
  models::VisionTransformer model(models::vit_preset(preset), g);
  optim::ModelEma ema(model.state_dict(), {.decay = 0.9998, .warmup = false});
  for (auto _ : state) benchmark::DoNotOptimize(ema.update());
  state.SetLabel(preset);
  set_gbps(state, 3.0 * 4.0 * static_cast<double>(model.num_parameters()));
}
BENCHMARK(BM_model_ema_update)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace pw::bench
