// Layer normalisation with a fused forward and backward kernel (ops/layer_norm.cpp).
#pragma once
#include "core/tensor.h"

namespace pw {

// Normalises over the trailing dims given by normalized_shape; weight/bias may be undefined.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

}  // namespace pw
