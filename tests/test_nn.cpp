// nn::Module: names, state dicts and their errors, train/eval, parameter counts.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "nn/init.h"
#include "nn/transformer.h"

using namespace pw;
using namespace pw::nn;

namespace {
struct TwoLayer : Module {
  TwoLayer() {
    fc = register_module("fc", std::make_shared<Linear>(3, 4));
    norm = register_module("norm", std::make_shared<LayerNorm>(4));
    scale = register_buffer("scale", ones({1}));
  }
  std::string type_name() const override { return "TwoLayer"; }
  std::shared_ptr<Linear> fc;
  std::shared_ptr<LayerNorm> norm;
  Tensor scale;
};

std::vector<std::string> names(const NamedTensors& ts) {
  std::vector<std::string> out;
  for (auto& [n, t] : ts) out.push_back(n);
  return out;
}
}  // namespace

TEST_CASE("modules name their parameters with dotted paths", "[nn]") {
  TwoLayer m;
  CHECK(names(m.named_parameters()) ==
        std::vector<std::string>{"fc.weight", "fc.bias", "norm.weight", "norm.bias"});
  CHECK(names(m.state_dict()) ==
        std::vector<std::string>{"scale", "fc.weight", "fc.bias", "norm.weight", "norm.bias"});
  CHECK(m.num_parameters() == 3 * 4 + 4 + 4 + 4);
  for (auto& p : m.parameters()) CHECK(p.requires_grad());
  CHECK_FALSE(m.scale.requires_grad());
}

TEST_CASE("Linear uses PyTorch's default init bounds", "[nn]") {
  Generator g(3);
  Linear lin(64, 32, true, g);
  const double bound = 1.0 / 8.0;
  for (float v : lin.weight.to_vector()) CHECK(std::abs(v) <= bound);
  for (float v : lin.bias.to_vector()) CHECK(std::abs(v) <= bound);
  lin.timm_init(g);
  // timm's trunc_normal_(std=.02) truncates at absolute bounds [-2, 2]: the sample is N(0, .02^2).
  double sq = 0;
  for (float v : lin.weight.to_vector()) sq += double(v) * v;
  CHECK(std::sqrt(sq / lin.weight.numel()) == Approx(0.02).epsilon(0.05));
  for (float v : lin.bias.to_vector()) CHECK(v == 0.0f);
  Tensor t = empty({4096});
  init::trunc_normal_(t, 1.0, g, 0.0, -1.0, 0.5);
  for (float v : t.to_vector()) CHECK((v >= -1.0f && v <= 0.5f));
}

TEST_CASE("state_dict round trips and load errors list every bad key", "[nn]") {
  TwoLayer a, b;
  b.load_state_dict(a.state_dict());
  auto sa = a.state_dict(), sb = b.state_dict();
  for (std::size_t i = 0; i < sa.size(); ++i)
    CHECK(sa[i].second.to_vector() == sb[i].second.to_vector());
  // The loaded values are copies, not aliases.
  CHECK_FALSE(sa[1].second.shares_storage(sb[1].second));

  NamedTensors bad = a.state_dict();
  bad.erase(bad.begin() + 1);                    // missing fc.weight
  bad.emplace_back("extra.weight", zeros({2}));  // unexpected
  bad[1].second = zeros({5});                    // fc.bias shape mismatch
  try {
    b.load_state_dict(bad);
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("missing keys: fc.weight"));
    CHECK_THAT(msg, Catch::Contains("unexpected keys: extra.weight"));
    CHECK_THAT(msg, Catch::Contains("fc.bias: checkpoint (5) vs model (4)"));
  }
  // Non-strict loading ignores missing and unexpected keys but not shape mismatches.
  NamedTensors partial{{"norm.weight", full({4}, 2.0)}, {"other", zeros({1})}};
  b.load_state_dict(partial, false);
  CHECK(b.norm->weight.to_vector() == std::vector<float>(4, 2.0f));
}

TEST_CASE("train and eval switch every submodule", "[nn]") {
  TransformerBlock blk(BlockConfig{});
  CHECK(blk.is_training());
  blk.eval();
  for (auto& [name, m] : blk.named_modules()) CHECK_FALSE(m->is_training());
  blk.train();
  for (auto& [name, m] : blk.named_modules()) CHECK(m->is_training());
}

TEST_CASE("transformer blocks use timm's parameter names", "[nn]") {
  BlockConfig cfg;
  cfg.attn.dim = 8;
  cfg.attn.heads = 2;
  cfg.mlp_hidden = 16;
  TransformerBlock blk(cfg);
  CHECK(names(blk.named_parameters()) ==
        std::vector<std::string>{"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                                 "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
                                 "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                                 "mlp.fc2.bias"});
  // One head spanning the whole width has no output projection.
  AttentionConfig one{8, 1, 8, false, 0, 0};
  Attention att(one);
  CHECK(names(att.named_parameters()) == std::vector<std::string>{"qkv.weight"});
  CHECK(att.qkv->weight.shape() == Shape{24, 8});
}
