// Whole-model parity with PyTorch, in the manner of llm.c's test_gpt2.c: tiny ViTs whose
// weights, input batch, logits, loss, every parameter's gradient and the losses of five AdamW
// steps PyTorch 1.13 wrote into tests/fixtures/parity_<variant>.safetensors
// (bench/pytorch_parity.py, the model of bench/pytorch_vit.py). The suite needs no PyTorch.
//
// Tolerances, all in float32 on both sides. Each tensor is compared as
//   max |ours - theirs| / max(max |theirs|, floor)
// (its error relative to the tensor's scale: single elements near zero have no meaningful
// relative error of their own). Both systems round every operation to float32 (unit roundoff
// 6e-8) but sum in other orders (OpenBLAS blocking, our fused attention and layer-norm
// kernels), so they agree to a small multiple of 6e-8; the bounds sit about ten times above
// what was measured (with one and with two threads):
//   logits and loss   5e-6  (measured up to 3e-7)
//   gradients         1e-5  (measured up to 7e-7; a backward pass is deeper than the forward)
//   AdamW losses      5e-6  (measured up to 2.3e-7 over the five steps)
// and below the effect of real mistakes, measured by changing the PyTorch side: a layer-norm
// eps of 1e-5 instead of 1e-6 moves the logits by up to 2.3e-5 and the gradients by up to
// 3.5e-5, the tanh form of GELU the logits by 2e-4, an attention scale 1% off by 1e-2.
// The floor, 5e-2 (the other gradients' scales in the fixtures are 0.03 to 0.7), is for a
// gradient that is zero in exact arithmetic and rounding noise on both sides (about 1e-7):
// the sequence-pool bias, which softmax's shift invariance cancels.
#include <catch2/catch.hpp>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/autograd.h"
#include "io/safetensors.h"
#include "models/vit.h"
#include "nn_test_util.h"
#include "ops/loss.h"
#include "optim/adam.h"

using namespace pw;
using pw::testing::max_abs;
using pw::testing::max_abs_diff;

namespace {

constexpr double kLogitsTol = 5e-6;
constexpr double kGradTol = 1e-5;
constexpr double kAdamWLossTol = 5e-6;
constexpr double kScaleFloor = 5e-2;

std::string fixture_path(const std::string& variant) {
  return std::string(PATCHWORK_TEST_FIXTURES) + "/parity_" + variant + ".safetensors";
}

// max |ours - theirs| / max(max |theirs|, kScaleFloor), shapes checked.
double scaled_error(const Tensor& ours, const Tensor& theirs) {
  REQUIRE(ours.shape() == theirs.shape());
  return max_abs_diff(ours, theirs) / std::max(max_abs(theirs), kScaleFloor);
}

struct Parity {
  SafetensorsFile file;
  models::ViTConfig cfg;
  std::unique_ptr<models::VisionTransformer> model;
  Tensor input, labels;
};

// Loads a fixture and a model holding its weights (strict: every name on both sides).
Parity load_parity(const std::string& variant) {
  Parity p;
  p.file = load_safetensors(fixture_path(variant));
  p.cfg = models::config_from_json(nlohmann::json::parse(p.file.metadata.at("config")));
  Generator gen(0);
  p.model = std::make_unique<models::VisionTransformer>(p.cfg, gen);
  NamedTensors weights;
  const std::string prefix = "weights.";
  for (const SafetensorsEntry& e : p.file.entries)
    if (e.name.rfind(prefix, 0) == 0) weights.emplace_back(e.name.substr(prefix.size()), e.tensor);
  p.model->load_state_dict(weights, /*strict=*/true);
  p.input = p.file.tensor("input");
  std::vector<float> labels;
  for (std::int64_t c : p.file.at("labels").to_int64()) labels.push_back(static_cast<float>(c));
  p.labels = from_vector(labels, {static_cast<std::int64_t>(labels.size())});
  return p;
}

void check_variant(const std::string& variant) {
  INFO("fixture " << fixture_path(variant));
  Parity p = load_parity(variant);
  models::VisionTransformer& model = *p.model;

  // Forward: logits and loss.
  Tensor logits = model.forward(p.input);
  Tensor loss = cross_entropy(logits, p.labels);
  const double logits_err = scaled_error(logits.detach(), p.file.tensor("logits"));
  const double torch_loss = p.file.tensor("loss").item();
  const double loss_err = std::abs(loss.item() - torch_loss) / std::abs(torch_loss);
  INFO("logits error " << logits_err << ", loss " << loss.item() << " vs " << torch_loss);
  CHECK(logits_err < kLogitsTol);
  CHECK(loss_err < kLogitsTol);

  // Backward: every parameter's gradient, and no gradient in the file without a parameter.
  loss.backward();
  std::set<std::string> grads_in_file;
  for (const SafetensorsEntry& e : p.file.entries)
    if (e.name.rfind("grads.", 0) == 0) grads_in_file.insert(e.name);
  const NamedTensors params = model.named_parameters();
  CHECK(grads_in_file.size() == params.size());
  for (const auto& [name, param] : params) {
    INFO("gradient of " << name);
    REQUIRE(p.file.contains("grads." + name));
    REQUIRE(param.grad().defined());
    const double err = scaled_error(param.grad(), p.file.tensor("grads." + name));
    CHECK(err < kGradTol);
  }

  // Five AdamW steps from the same weights, hyperparameters as the fixture's.
  const auto h = nlohmann::json::parse(p.file.metadata.at("adamw"));
  optim::AdamW opt(model.parameters(), {.lr = h.at("lr").get<double>(),
                                        .beta1 = h.at("betas").at(0).get<double>(),
                                        .beta2 = h.at("betas").at(1).get<double>(),
                                        .eps = h.at("eps").get<double>(),
                                        .weight_decay = h.at("weight_decay").get<double>()});
  const std::vector<float> torch_losses = p.file.tensor("adamw_losses").to_vector<float>();
  REQUIRE(torch_losses.size() == 5);
  for (std::size_t step = 0; step < torch_losses.size(); ++step) {
    opt.zero_grad();
    Tensor l = cross_entropy(model.forward(p.input), p.labels);
    l.backward();
    INFO("AdamW step " << step << ": loss " << l.item() << ", PyTorch " << torch_losses[step]);
    CHECK(std::abs(l.item() - torch_losses[step]) / std::abs(torch_losses[step]) < kAdamWLossTol);
    opt.step();
  }
}

}  // namespace

TEST_CASE("parity with PyTorch: patch stem, class token, learned position embedding", "[parity]") {
  check_variant("patch_cls_learn");
}

TEST_CASE("parity with PyTorch: conv stem, sequence pooling, sin-cos position embedding",
          "[parity]") {
  check_variant("conv_attn_sincos");
}

TEST_CASE("parity with PyTorch: mean pooling, no position embedding, no qkv bias", "[parity]") {
  check_variant("patch_mean_none");
}
