// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay
// (torch.optim.SGD).
#pragma once
#include "optim/optimizer.h"

namespace pw::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};

// Per parameter, with g the gradient (negated when maximizing), mu momentum, tau dampening:
//   g <- g + weight_decay * p
//   b <- g on the first update, else mu * b + (1 - tau) * g      (only when mu != 0)
//   g <- g + mu * b if nesterov, else b                         (only when mu != 0)
//   p <- p - lr * g
class SGD : public Optimizer {
 public:
  // One group holding all `params`:  SGD opt(params, {.lr = 0.1, .momentum = 0.9});
  SGD(std::vector<Tensor> params, const SGDOptions& options);
  // Several groups, each with optional lr / weight_decay overrides of `options`.
  SGD(const std::vector<GroupSpec>& groups, const SGDOptions& options);

  std::string name() const override { return "SGD"; }

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& state) override;
  void validate(const ParamGroup& group) const override;
};

}  // namespace pw::optim
