// Matrix products, each one graph node: the GEMM goes to OpenBLAS (float32 and float64) or,
// under autocast, to the bfloat16 engine of ops/gemm_bf16.h. Forward and backward in
// ops/matmul.cpp.
#pragma once
#include "core/tensor.h"

namespace pw {

// a @ b: 1-D/2-D as torch.matmul, and batched with broadcast batch dims; transposed views
// go to BLAS with its transpose flags instead of being copied.
Tensor matmul(const Tensor& a, const Tensor& b);
// x @ weight^T + bias for x of any leading shape (..., in); weight is (out, in) as in PyTorch.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace pw
