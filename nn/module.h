// Module: PyTorch-style container of named parameters, buffers and child modules.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/named_tensors.h"
#include "core/tensor.h"

namespace pw::nn {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The forward pass of modules that map one tensor to one tensor (used by Sequential).
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // Parameters of this module and its children, with dotted names ("blocks.0.attn.qkv.weight").
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  // Children, recursively, with dotted names ("" is this module).
  std::vector<std::pair<std::string, Module*>> named_modules();
  // Parameters and buffers, in registration order.
  NamedTensors state_dict() const;
  // Copies values into the registered tensors. With strict, missing and unexpected keys are an
  // error; shape mismatches always are. The message lists every offending name.
  void load_state_dict(const NamedTensors& state, bool strict = true);

  // Switches this module and its children to training or evaluation behaviour.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  std::int64_t num_parameters() const;
  // Class name for summaries ("Linear", "Attention", ...).
  virtual std::string type_name() const = 0;

 protected:
  // Registers a parameter (marked requires_grad) and returns it.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, NamedTensors& out, bool params, bool buffers) const;

  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace pw::nn
