// The convolutional tokenizer of Compact Transformers (Hassani et al. 2021, "Escaping the Big
// Data Paradigm with Compact Transformers"): a few conv -> ReLU -> max-pool layers whose last
// feature map (B, D, G, G) becomes G*G tokens of width D.
#pragma once
#include <memory>
#include <vector>

#include "nn/transformer.h"

namespace pw::nn {

struct ConvTokenizerConfig {
  std::int64_t channels = 3;  // of the input image
  std::int64_t dim = 256;     // D: output channels of the last conv, the token width
  std::int64_t layers = 2;
  std::int64_t hidden = 64;  // output channels of every conv but the last
  std::int64_t kernel = 3;
  std::int64_t stride = 1;
  bool max_pool = true;  // a 3x3, stride 2, padding 1 max-pool after each conv
};

// `layers` times conv2d (kernel x kernel, `stride`, padding kernel / 2, no bias) -> ReLU ->
// max-pool (3x3, stride 2, padding 1; or none), then flatten(2).transpose(1, 2):
// (B, C, H, W) -> (B, G*G, D). With stride 2 and no pool it is the stride-2 conv stem of Xiao et
// al. 2021 ("Early Convolutions Help Transformers See Better") without BatchNorm.
// Parameters: conv.{i}.weight (out_i, in_i, kernel, kernel), in_0 = channels, out_i = hidden
// for i < layers - 1 and dim for the last; Kaiming-normal init (fan_in, ReLU gain), as CCT.
class ConvTokenizer : public Module {
 public:
  explicit ConvTokenizer(const ConvTokenizerConfig& cfg, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ConvTokenizer"; }
  // For a side x side input: the side of each conv's output (before its pool), and last the
  // side G of the token grid.
  static std::vector<std::int64_t> sides(const ConvTokenizerConfig& cfg, std::int64_t side);

  ConvTokenizerConfig cfg;
  std::shared_ptr<ModuleList<Conv2d>> conv;
};

}  // namespace pw::nn
