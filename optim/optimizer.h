// Optimizer base: parameter groups, the per-parameter state, step/zero_grad and the
// state_dict used for exact resume. Concrete update rules live in sgd.h and adam.h.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace pw::optim {

// One group of parameters sharing hyperparameters (torch.optim's param_groups entries).
// Every optimizer reads lr and weight_decay; the other fields belong to one optimizer each
// and are ignored by the rest. Schedulers write lr (and OneCycleLR momentum / beta1).
struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double initial_lr = 0.0;  // lr at construction; schedulers compute from it (PyTorch's initial_lr)
  bool maximize = false;
  // SGD
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  // Adam / AdamW
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  bool amsgrad = false;
};

// How a caller asks for a group: its parameters and, optionally, its own lr / weight decay
// (anything unset comes from the optimizer's options), e.g. a no-decay group for biases:
//   {.params = no_decay, .weight_decay = 0.0}
struct GroupSpec {
  std::vector<Tensor> params;
  std::optional<double> lr;
  std::optional<double> weight_decay;
};

// A checkpointable snapshot: named tensors plus JSON scalars.
//   tensors: "state.<param index>.<buffer>" (momentum_buffer, exp_avg, exp_avg_sq,
//            max_exp_avg_sq), where the param index counts over all groups in order;
//   scalars: {"optimizer": name, "param_groups": [{hyperparameters..., "params": [indices]}],
//             "state": {"<param index>": {"step": n}}}.
// The tensors are copies: the snapshot does not change when the optimizer steps again.
struct OptimizerState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  nlohmann::json scalars;
};

// What an optimizer keeps per parameter: the number of updates it received and named buffers
// (created lazily on the first update, as PyTorch does).
struct ParamState {
  std::int64_t step = 0;
  std::map<std::string, Tensor> buffers;
  // The buffer called `name`, or an undefined tensor.
  Tensor find(const std::string& name) const;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient (parameters without one are skipped).
  void step();
  // Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // The optimizer's name as used in errors and in the state_dict ("SGD", "Adam", "AdamW").
  virtual std::string name() const = 0;
  // Whether momentum is beta1 (Adam family) rather than `momentum` (SGD); for OneCycleLR.
  virtual bool uses_beta1() const { return false; }

  // A copy of the whole optimizer state (per-parameter buffers, step counts, group options).
  OptimizerState state_dict() const;
  // Restores a state_dict taken from an optimizer of the same kind over parameters of the
  // same shapes in the same groups; throws a pw::Error naming the mismatch otherwise.
  void load_state_dict(const OptimizerState& state);

 protected:
  // Takes ownership of the groups and checks the parameters (defined, contiguous leaves,
  // each in one group only); sets each group's initial_lr to its lr.
  explicit Optimizer(std::vector<ParamGroup> groups);
  // Applies the update rule to one parameter in place; `grad` is contiguous with its dtype.
  virtual void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                      ParamState& state) = 0;
  // Checks a group's hyperparameters; called on construction and on load_state_dict.
  virtual void validate(const ParamGroup& group) const = 0;

  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;  // indexed by param index (over all groups, in order)
};

// Builds groups from specs: unset lr / weight_decay are taken from `defaults`, the other
// hyperparameters are copied from it.
std::vector<ParamGroup> make_groups(const std::vector<GroupSpec>& specs,
                                    const ParamGroup& defaults);

}  // namespace pw::optim
