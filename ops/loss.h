// Losses (torch.nn.functional semantics and defaults), each one graph node (ops/loss.cpp).
#pragma once
#include "core/tensor.h"

namespace pw {

enum class Reduction { None, Mean, Sum };
// Cross-entropy of logits (B, C) with class indices (B) given as a float tensor of integer
// values, fused with log_softmax; label_smoothing as torch.nn.functional.cross_entropy.
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     Reduction reduction = Reduction::Mean, double label_smoothing = 0.0);
// Same with probability (soft) targets of shape (B, C).
Tensor cross_entropy_soft(const Tensor& logits, const Tensor& target_probs,
                          Reduction reduction = Reduction::Mean, double label_smoothing = 0.0);
// Negative log-likelihood of log-probabilities (B, C) and class indices (B).
Tensor nll_loss(const Tensor& log_probs, const Tensor& target,
                Reduction reduction = Reduction::Mean);
// (input - target)^2 reduced; input and target have the same shape, both get gradients.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);

}  // namespace pw
