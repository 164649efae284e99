// The optimizer and learning-rate schedule of `vit train`, built from its flags.
#pragma once
#include <cstdint>
#include <memory>

#include "apps/train/options.h"
#include "models/vit.h"
#include "optim/optimizer.h"
#include "optim/scheduler.h"

namespace pw::app {

// timm's optimizer set-up: AdamW, Adam or SGD (Nesterov when momentum > 0), with no weight
// decay on biases, norm weights (1-D tensors), pos_embed and cls_token.
std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& o,
                                                 const models::VisionTransformer& model);

// A per-step learning-rate schedule, or the plateau schedule, which the loop steps per epoch.
struct Schedule {
  std::unique_ptr<optim::LRScheduler> per_step;
  std::unique_ptr<optim::ReduceLROnPlateau> plateau;
};

// The schedule of --sched over `total_steps` optimizer steps: a linear warmup of
// --warmup-epochs (at most total_steps - 1 steps), then the schedule, cosine reaching --min-lr
// after the last step. Construction writes the lr of step 0 into the optimizer.
// The linear warmup of make_schedule's schedule over `total_steps`, in steps (0 for onecycle and
// plateau, which have none of their own).
std::int64_t warmup_steps(const TrainOptions& o, std::int64_t steps_per_epoch,
                          std::int64_t total_steps);
Schedule make_schedule(const TrainOptions& o, optim::Optimizer& opt, std::int64_t steps_per_epoch,
                       std::int64_t total_steps);

}  // namespace pw::app
