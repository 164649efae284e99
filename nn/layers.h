// Basic layers: Linear, LayerNorm, Dropout, DropPath, activations, containers.
#pragma once
#include <memory>
#include <vector>

#include "nn/module.h"

namespace pw::nn {

// y = x W^T + b with weight (out, in). PyTorch's default init: U(-1/sqrt(in), 1/sqrt(in))
// for weight (kaiming_uniform with a = sqrt 5) and bias; timm_init() switches to
// trunc_normal(std 0.02) weights and zero bias, as timm's ViT does.
class Linear : public Module {
 public:
  Linear(std::int64_t in, std::int64_t out, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  void timm_init(Generator& gen);

  Tensor weight, bias;  // bias undefined when disabled
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(std::int64_t dim, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }

  Tensor weight, bias;
  double eps;
};

// Dropout and DropPath draw their masks from `gen`, or from the default generator (whose
// state checkpoints save) when none is given.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr) : p(p), gen_(gen) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  double p;

 private:
  Generator* gen_;
};

// Stochastic depth on a residual branch.
class DropPath : public Module {
 public:
  explicit DropPath(double p = 0.0, Generator* gen = nullptr) : p(p), gen_(gen) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "DropPath"; }
  double p;

 private:
  Generator* gen_;
};

class GELU : public Module {
 public:
  explicit GELU(std::string approximate = "none") : approximate(std::move(approximate)) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GELU"; }
  std::string approximate;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

// Applies its children in order; children are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  std::size_t size() const { return items_.size(); }
  Module& operator[](std::size_t i) { return *items_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

// A list of modules of one type, named "0", "1", ... (no forward of its own).
template <typename M>
class ModuleList : public Module {
 public:
  void push_back(std::shared_ptr<M> m) {
    items_.push_back(register_module(std::to_string(items_.size()), std::move(m)));
  }
  std::size_t size() const { return items_.size(); }
  M& operator[](std::size_t i) { return *items_.at(i); }
  auto begin() { return items_.begin(); }
  auto end() { return items_.end(); }
  std::string type_name() const override { return "ModuleList"; }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace pw::nn
