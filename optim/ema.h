// Model EMA: an exponential moving average of a model's parameters and buffers, as timm's
// ModelEmaV2/V3 keep it. After every optimizer step,
//   ema = decay * ema + (1 - decay) * value
// for every tracked tensor. The averages live in one flat float32 buffer, updated in a single
// parallel pass over all tensors.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/named_tensors.h"
#include "core/tensor.h"

namespace pw::optim {

struct ModelEmaOptions {
  double decay = 0.9998;  // timm's --model-ema-decay default
  // With warmup, update n (counting from 0) uses min(decay, (1 + n) / (10 + n)), so that the
  // average forgets the random initialisation within the first steps: the first update keeps
  // 10% of the starting weights, the 90th 50%, the 990th 1%.
  bool warmup = false;
};

class ModelEma {
 public:
  // Tracks `tensors` (float32 and contiguous, e.g. a module's state_dict(); the handles are
  // kept, so later in-place updates of the model are seen) and starts every average at the
  // tensor's current value.
  explicit ModelEma(NamedTensors tensors, ModelEmaOptions options = {});

  // The decay that the update after `updates` earlier updates uses.
  double decay_at(std::int64_t updates) const;
  // Folds the tracked tensors' current values into the averages; returns the decay used.
  double update();
  // Updates applied since construction (or restored by load_state).
  std::int64_t num_updates() const { return updates_; }
  const ModelEmaOptions& options() const { return options_; }

  // The averages under the tracked names and shapes: views of the flat buffer, which later
  // updates change.
  const NamedTensors& averages() const { return averages_; }
  // Copies the averages into `dst`, tensors of the tracked names and shapes in the same order
  // (e.g. the state_dict of a second model that evaluates them).
  void copy_to(const NamedTensors& dst) const;

  // {"updates": n, "decay": d, "warmup": w}; the averages are the tensors of the state.
  nlohmann::json state_scalars() const;
  // Restores averages saved from a ModelEma over the same names and shapes (each one required)
  // and the update count; the decay and warmup stay those of this object's options.
  void load_state(const NamedTensors& averages, const nlohmann::json& scalars);

 private:
  NamedTensors tracked_;
  Tensor flat_;                       // every average, in tracked order
  NamedTensors averages_;             // views of flat_
  std::vector<std::int64_t> starts_;  // offset of tensor i in flat_; starts_.back() = numel
  ModelEmaOptions options_;
  std::int64_t updates_ = 0;
};

}  // namespace pw::optim
