#include "apps/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "optim/adam.h"
#include "optim/sgd.h"

namespace pw::app {
namespace {

// timm's rule: no weight decay on biases, norm weights (1-D tensors), pos_embed, cls_token.
std::vector<optim::GroupSpec> param_groups(const models::VisionTransformer& model) {
  std::vector<Tensor> decay, no_decay;
  for (auto& [name, p] : model.named_parameters()) {
    if (p.dim() <= 1 || name == "pos_embed" || name == "cls_token")
      no_decay.push_back(p);
    else
      decay.push_back(p);
  }
  return {{decay, std::nullopt, std::nullopt}, {no_decay, std::nullopt, 0.0}};
}

}  // namespace

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& o,
                                                 const models::VisionTransformer& model) {
  auto groups = param_groups(model);
  if (o.opt == "sgd") {
    optim::SGDOptions so;
    so.lr = o.lr;
    so.momentum = o.momentum;
    so.weight_decay = o.weight_decay;
    so.nesterov = o.momentum > 0;
    return std::make_unique<optim::SGD>(groups, so);
  }
  if (o.opt == "adam") {
    optim::AdamOptions ao;
    ao.lr = o.lr;
    ao.weight_decay = o.weight_decay;
    return std::make_unique<optim::Adam>(groups, ao);
  }
  optim::AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  return std::make_unique<optim::AdamW>(groups, ao);
}

std::int64_t warmup_steps(const TrainOptions& o, std::int64_t steps_per_epoch,
                          std::int64_t total_steps) {
  if (o.sched == "onecycle" || o.sched == "plateau") return 0;
  const std::int64_t total = std::max<std::int64_t>(1, total_steps);
  return std::max<std::int64_t>(
      0,
      std::min<std::int64_t>(
          static_cast<std::int64_t>(std::llround(o.warmup_epochs * steps_per_epoch)), total - 1));
}

Schedule make_schedule(const TrainOptions& o, optim::Optimizer& opt, std::int64_t steps_per_epoch,
                       std::int64_t total_steps) {
  Schedule s;
  const std::int64_t total = std::max<std::int64_t>(1, total_steps);
  const std::int64_t warmup = warmup_steps(o, steps_per_epoch, total);
  std::unique_ptr<optim::LRScheduler> main;
  if (o.sched == "onecycle") {
    s.per_step = std::make_unique<optim::OneCycleLR>(opt, o.lr, total);
    return s;
  }
  if (o.sched == "plateau") {
    optim::PlateauOptions po;
    po.mode = optim::PlateauMode::Max;
    po.factor = o.decay_rate;
    po.patience = o.patience_epochs;
    po.min_lr = o.min_lr;
    s.plateau = std::make_unique<optim::ReduceLROnPlateau>(opt, po);
    return s;
  }
  if (o.sched == "cosine") {
    main = std::make_unique<optim::CosineAnnealingLR>(
        opt, std::max<std::int64_t>(1, total - warmup), o.min_lr);
  } else if (o.sched == "step") {
    main = std::make_unique<optim::StepLR>(opt, o.decay_epochs * steps_per_epoch, o.decay_rate);
  } else if (o.sched == "multistep") {
    std::vector<std::int64_t> ms;
    for (auto e : o.decay_milestones) ms.push_back(e * steps_per_epoch - warmup);
    main = std::make_unique<optim::MultiStepLR>(opt, ms, o.decay_rate);
  } else {
    main = std::make_unique<optim::ConstantLR>(opt, 1.0, 0);
  }
  if (warmup <= 0) {
    s.per_step = std::move(main);
    return s;
  }
  auto warm =
      std::make_unique<optim::LinearLR>(opt, std::min(1.0, o.warmup_lr / o.lr), 1.0, warmup);
  std::vector<std::shared_ptr<optim::LRScheduler>> parts;
  parts.push_back(std::move(warm));
  parts.push_back(std::move(main));
  s.per_step = std::make_unique<optim::SequentialLR>(opt, std::move(parts),
                                                     std::vector<std::int64_t>{warmup});
  return s;
}

}  // namespace pw::app
