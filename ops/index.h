// Integer indexing (ops/index.cpp): indices are float tensors holding integer values.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace pw {

// Rows of x along dim picked by integer-valued `index` (1-D).
Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index);
// out[i][j] = x[i][index[i][j]] along dim (torch.gather); index holds integer values.
Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index);

}  // namespace pw
