// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
#pragma once
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace pw::optim {

// The p-norm of all gradients together, (sum_i |g_i|^p)^(1/p) over every element of every
// defined gradient (max |g_i| for p = infinity), computed in double; 0 when there is none.
double grad_norm(const std::vector<Tensor>& params, double norm_type = 2.0);

// Scales every gradient in place by max_norm / (total + 1e-6) when that is below 1, and returns
// the total norm from before clipping. A non-finite total (inf/nan gradients) is returned with
// the gradients left untouched, so the caller can see it and decide (e.g. skip the step).
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);

inline constexpr double kInfNorm = std::numeric_limits<double>::infinity();

}  // namespace pw::optim
