// `--model key=value` overrides (one per input line) over a small config: a config that passes
// validate() must be one whose shapes can be worked out without overflow, and when it is small
// enough to build, the model built must have exactly the state dict the config describes.
#include <cstdlib>
#include <map>

#include "core/autograd.h"
#include "fuzz_util.h"
#include "models/vit.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pw;
  std::vector<std::string> overrides;
  for (auto line : fuzz::split(std::span<const std::uint8_t>(data, size), "\n"))
    overrides.emplace_back(reinterpret_cast<const char*>(line.data()), line.size());
  return fuzz::expect_errors_only([&] {
    models::ViTConfig base;
    base.image_size = 16, base.patch_size = 4, base.dim = 16, base.depth = 1, base.heads = 2;
    base.mlp_dim = 16;
    const models::ViTConfig cfg = models::apply_overrides(base, overrides);
    const std::int64_t params = cfg.parameter_count();
    if (params > 50'000 || cfg.image_size > 32 || cfg.num_tokens() > 64) return;
    Generator gen(0);
    models::VisionTransformer model(cfg, gen);
    std::map<std::string, Shape> built, described;
    for (const auto& [name, t] : model.state_dict()) built[name] = t.shape();
    for (const auto& [name, shape] : cfg.state_dict_shapes()) described[name] = shape;
    if (built != described || model.num_parameters() != params) std::abort();
    if (!(model.forward_flops() > 0)) std::abort();
    NoGradGuard no_grad;
    model.eval();
    model.forward(zeros({1, cfg.channels, cfg.image_size, cfg.image_size}));
  });
}
