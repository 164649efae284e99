// softmax and log_softmax along any dim (ops/softmax.cpp).
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace pw {

// exp(x - max) / sum along dim; backward from the saved output.
Tensor softmax(const Tensor& x, std::int64_t dim);
// x - logsumexp(x) along dim; backward from the saved output.
Tensor log_softmax(const Tensor& x, std::int64_t dim);

}  // namespace pw
