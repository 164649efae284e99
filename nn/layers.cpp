#include "nn/layers.h"

#include <cmath>

#include "nn/init.h"
#include "ops/activation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/layer_norm.h"
#include "ops/matmul.h"

namespace pw::nn {

Linear::Linear(std::int64_t in, std::int64_t out, bool has_bias, Generator& gen) {
  PW_CHECK(in > 0 && out > 0, "[Linear] invalid sizes in={} out={}", in, out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", empty({out, in}));
  init::uniform_(weight, -bound, bound, gen);
  if (has_bias) {
    bias = register_parameter("bias", empty({out}));
    init::uniform_(bias, -bound, bound, gen);
  }
}

void Linear::timm_init(Generator& gen) {
  init::trunc_normal_(weight, 0.02, gen);
  if (bias.defined()) init::constant_(bias, 0.0);
}

Tensor Linear::forward(const Tensor& x) {
  return linear(x, weight, bias);
}

LayerNorm::LayerNorm(std::int64_t dim, double eps, bool affine) : eps(eps) {
  if (affine) {
    weight = register_parameter("weight", ones({dim}));
    bias = register_parameter("bias", zeros({dim}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  return layer_norm(x, {x.shape().back()}, weight, bias, eps);
}

Tensor Dropout::forward(const Tensor& x) {
  return p > 0 && is_training() ? dropout(x, p, true, gen_ ? *gen_ : default_generator()) : x;
}

Tensor DropPath::forward(const Tensor& x) {
  return p > 0 && is_training() ? drop_path(x, p, true, gen_ ? *gen_ : default_generator()) : x;
}

Tensor GELU::forward(const Tensor& x) {
  return gelu(x, approximate);
}
Tensor ReLU::forward(const Tensor& x) {
  return relu(x);
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) push_back(std::move(m));
}

void Sequential::push_back(std::shared_ptr<Module> m) {
  items_.push_back(register_module(std::to_string(items_.size()), std::move(m)));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : items_) y = m->forward(y);
  return y;
}

}  // namespace pw::nn
