// linear followed by GELU, an MLP's first half, fused under autocast (ops/linear_gelu.cpp).
#pragma once
#include "core/tensor.h"

namespace pw {

// gelu(linear(x, weight, bias)), an MLP's first half. Under autocast it is one fused node whose
// output is bfloat16, the operand of the GEMM that follows (ops/linear_gelu.cpp); otherwise
// exactly the two ops.
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace pw
