// Activations with fused forward kernels (torch.nn.functional semantics), backward in
// ops/activation.cpp; the plain elementwise ones (relu, tanh, sigmoid) are in ops/elementwise.h.
#pragma once
#include <string>

#include "core/tensor.h"

namespace pw {

// Exact GELU 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation when approximate = "tanh".
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
// x * sigmoid(x).
Tensor silu(const Tensor& x);

}  // namespace pw
