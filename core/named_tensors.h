// Ordered (name, tensor) pairs with dotted names, as torch's state_dict: what modules return,
// what the optimizer, the model EMA and safetensors files exchange.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace pw {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

}  // namespace pw
