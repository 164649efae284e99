// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), as
// torch.optim.Adam / torch.optim.AdamW, with bias correction and optional AMSGrad.
#pragma once
#include "optim/optimizer.h"

namespace pw::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
  bool maximize = false;
};

// AdamW's defaults differ from Adam's only in weight decay (PyTorch: 1e-2). A separate
// aggregate so that both take designated initializers: {.lr = 1e-3, .weight_decay = 0.05}.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
};

// Per parameter at step t, with g the gradient (negated when maximizing):
//   Adam:  g <- g + weight_decay * p            AdamW:  p <- p * (1 - lr * weight_decay)
//   m <- beta1 * m + (1 - beta1) * g
//   v <- beta2 * v + (1 - beta2) * g^2
//   vmax <- max(vmax, v) (AMSGrad; then vmax replaces v below)
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Buffers: exp_avg (m), exp_avg_sq (v), max_exp_avg_sq (vmax), all zero before step 1.
class Adam : public Optimizer {
 public:
  // One group holding all `params`:  Adam opt(params, {.lr = 3e-4});
  Adam(std::vector<Tensor> params, const AdamOptions& options = {});
  // Several groups, each with optional lr / weight_decay overrides of `options`.
  Adam(const std::vector<GroupSpec>& groups, const AdamOptions& options = {});

  std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  bool uses_beta1() const override { return true; }

 protected:
  Adam(const std::vector<GroupSpec>& groups, const AdamOptions& options, bool decoupled);
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& state) override;
  void validate(const ParamGroup& group) const override;

 private:
  bool decoupled_;  // AdamW's weight decay
};

class AdamW : public Adam {
 public:
  // One group:  AdamW opt(params, {.lr = 1e-3, .weight_decay = 0.05});
  AdamW(std::vector<Tensor> params, const AdamWOptions& options = {});
  // The usual ViT split:  AdamW opt({{decay}, {.params = no_decay, .weight_decay = 0.0}}, opts);
  AdamW(const std::vector<GroupSpec>& groups, const AdamWOptions& options = {});
};

}  // namespace pw::optim
