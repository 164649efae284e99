// Mixed precision as torch.autocast("cpu", dtype=torch.bfloat16): inside an AutocastGuard the
// GEMM ops (linear, matmul, the patch-embedding convolution and both products inside attention)
// read their operands in bfloat16 and accumulate in float32; everything else (LayerNorm,
// softmax, GELU, losses, reductions, the optimizer) stays float32, and so do the master
// weights and their gradients. The state is per thread, like GradMode.
#pragma once
#include "core/tensor.h"

namespace pw {

class Autocast {
 public:
  // True inside an enabled AutocastGuard on this thread.
  static bool is_enabled();
};

// Enables (or, with enabled = false, disables) autocast for its scope. When the outermost
// enabled guard ends, the cache of bfloat16 weight copies is cleared (as PyTorch's is).
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool prev_;
};

// t as a contiguous bfloat16 tensor (no autograd). Leaves that require grad (the weights) are
// cast once per guard scope and the copy is reused by every later use (and by backward, which
// holds on to it); the cached copy is refreshed if the weight changed in place meanwhile.
Tensor autocast_bf16(const Tensor& t);

}  // namespace pw
