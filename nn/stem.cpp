#include "nn/stem.h"

#include "nn/init.h"
#include "ops/elementwise.h"
#include "ops/pool.h"
#include "ops/shape.h"

namespace pw::nn {
namespace {

// ReLU of a channels-last map run on its (B, H, W, C) memory: one contiguous pass whose output
// keeps the layout (relu of the (B, C, H, W) view itself would gather it into NCHW order).
Tensor relu_channels_last(const Tensor& x) {
  if (x.is_contiguous() || !is_channels_last(x)) return relu(x);
  return permute(relu(permute(x, {0, 2, 3, 1})), {0, 3, 1, 2});
}

}  // namespace

ConvTokenizer::ConvTokenizer(const ConvTokenizerConfig& c, Generator& gen) : cfg(c) {
  PW_CHECK(cfg.channels > 0 && cfg.dim > 0 && cfg.layers > 0 && cfg.hidden > 0 && cfg.kernel > 0 &&
               cfg.stride > 0,
           "[ConvTokenizer] channels, dim, layers, hidden, kernel and stride must be positive");
  conv = register_module("conv", std::make_shared<ModuleList<Conv2d>>());
  std::int64_t in = cfg.channels;
  for (std::int64_t i = 0; i < cfg.layers; ++i) {
    const std::int64_t out = i + 1 < cfg.layers ? cfg.hidden : cfg.dim;
    auto layer =
        std::make_shared<Conv2d>(in, out, cfg.kernel, cfg.stride, cfg.kernel / 2, false, gen);
    init::kaiming_normal_(layer->weight, gen);
    conv->push_back(layer);
    in = out;
  }
}

std::vector<std::int64_t> ConvTokenizer::sides(const ConvTokenizerConfig& cfg, std::int64_t side) {
  std::vector<std::int64_t> out;
  const std::int64_t pad = cfg.kernel / 2;
  for (std::int64_t i = 0; i < cfg.layers; ++i) {
    side = (side + 2 * pad - cfg.kernel) / cfg.stride + 1;
    out.push_back(side);
    if (cfg.max_pool) side = (side + 2 - 3) / 2 + 1;
  }
  out.push_back(side);
  return out;
}

Tensor ConvTokenizer::forward(const Tensor& x) {
  PW_CHECK(x.dim() == 4 && x.shape()[1] == cfg.channels,
           "[ConvTokenizer] expected (B, {}, H, W), got {}", cfg.channels, shape_str(x.shape()));
  // The stem works on channels-last maps: conv2d and max_pool2d return them, the ReLU keeps
  // them, and im2col copies whole window rows from them; the image is turned once, here.
  Tensor y = x.is_contiguous() && x.shape()[1] > 1
                 ? permute(contiguous(permute(x, {0, 2, 3, 1})), {0, 3, 1, 2})
                 : x;
  for (auto& layer : *conv) {
    y = layer->forward(y);  // (B, C_i, S, S) over channels-last memory (ops/conv.cpp)
    // max(relu(a), relu(b)) = relu(max(a, b)): ReLU is monotone, so pooling first gives the
    // same values and gradients while the ReLU touches a quarter of the elements (forward and
    // backward at (128, 64, 32, 32), one thread: 32 ms against 43 ms, BM_stem_relu_pool).
    if (cfg.max_pool) y = max_pool2d(y, 3, 2, 1);
    y = relu_channels_last(y);
  }
  // (B, D, G, G) channels-last -> (B, G*G, D): both views, the tokens come out contiguous.
  return transpose(flatten(y, 2), 1, 2);
}

}  // namespace pw::nn
