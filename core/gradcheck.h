// gradcheck: compares the Jacobian that backward() computes with central finite differences,
// in the spirit of torch.autograd.gradcheck. Inputs must be float64.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pw {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the first mismatching entry, or "" when ok
  explicit operator bool() const { return ok; }
};

// Builds the full Jacobian of fn(inputs) with respect to every input that requires grad, both
// numerically (central differences on each input element) and analytically (one backward per
// output element), and checks |analytic - numeric| <= atol + rtol * |numeric| everywhere.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opts = {});

}  // namespace pw
