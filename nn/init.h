// Parameter initialisers (torch.nn.init and timm's trunc_normal_), all in place under no-grad
// and drawing from an explicit generator.
#pragma once
#include "core/random.h"
#include "core/tensor.h"

namespace pw::nn::init {

void uniform_(const Tensor& t, double low, double high, Generator& gen);
void normal_(const Tensor& t, double mean, double std, Generator& gen);
// Normal(mean, std) redrawn until inside [a, b] (timm's default: a = -2, b = 2, absolute).
void trunc_normal_(const Tensor& t, double std, Generator& gen, double mean = 0.0, double a = -2.0,
                   double b = 2.0);
void constant_(const Tensor& t, double value);
// Normal(0, sqrt(2 / fan_in)): torch.nn.init.kaiming_normal_ with its defaults (mode fan_in,
// the gain of ReLU), as CCT initialises its tokenizer's convolutions.
void kaiming_normal_(const Tensor& t, Generator& gen);
// fan_in of a weight laid out (out, in, ...) as PyTorch's.
std::int64_t fan_in(const Tensor& weight);

}  // namespace pw::nn::init
