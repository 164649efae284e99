// Dropout and stochastic depth (ops/dropout.cpp): the mask comes from an explicit generator.
#pragma once
#include "core/random.h"
#include "core/tensor.h"

namespace pw {

// Zeroes elements with probability p and scales the rest by 1/(1-p) when training.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());
// Stochastic depth: drops whole samples (dim 0) of a residual branch, scaled by 1/(1-p).
Tensor drop_path(const Tensor& x, double p, bool training, Generator& gen = default_generator());

}  // namespace pw
