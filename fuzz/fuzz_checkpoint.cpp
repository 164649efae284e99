// The model-file and checkpoint loader, then what the commands do with what it read: build the
// model the file's config describes (only once its tensors agree with that config) and run it,
// load the weights into another model as --init does (resizing the position embedding), and,
// for a checkpoint, restore the optimizer, the schedule and the model EMA as --resume does.
#include "apps/train/schedule.h"
#include "apps/weights.h"
#include "core/autograd.h"
#include "fuzz_util.h"
#include "optim/ema.h"

namespace {

pw::models::ViTConfig init_target() {
  pw::models::ViTConfig c;
  c.image_size = 8, c.patch_size = 4, c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 8;
  c.num_classes = 3;
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pw;
  return fuzz::expect_errors_only([&] {
    const app::LoadedModel loaded =
        app::parse_model_file(std::span<const std::uint8_t>(data, size), "fuzz");
    Generator gen(0);
    {
      models::VisionTransformer other(init_target(), gen);
      app::load_weights_into(other, loaded.weights, /*strict=*/false);
    }
    auto model = app::build_model(loaded);
    const auto& cfg = model->cfg;
    if (cfg.image_size <= 32 && cfg.num_tokens() <= 64) {
      NoGradGuard no_grad;
      model->eval();
      model->forward(zeros({1, cfg.channels, cfg.image_size, cfg.image_size}));
    }
    if (!loaded.is_checkpoint) return;
    const app::TrainOptions options;
    auto optimizer = app::make_optimizer(options, *model);
    optimizer->load_state_dict(loaded.optimizer);
    app::Schedule schedule = app::make_schedule(options, *optimizer, 10, 100);
    schedule.per_step->load_state_dict(loaded.state.scheduler);
    if (!loaded.ema.empty()) {
      optim::ModelEma ema(model->state_dict());
      ema.load_state(loaded.ema, loaded.ema_state);
    }
  });
}
