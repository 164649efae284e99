#include "nn/module.h"

#include <map>

#include "core/autograd.h"

namespace pw::nn {

Tensor Module::forward(const Tensor&) {
  fail("[{}] has no single-tensor forward", type_name());
}

void Module::collect(const std::string& prefix, NamedTensors& out, bool params,
                     bool buffers) const {
  if (params)
    for (const auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  if (buffers)
    for (const auto& [n, t] : buffers_) out.emplace_back(prefix + n, t);
  for (const auto& [n, child] : children_) child->collect(prefix + n + ".", out, params, buffers);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", out, true, false);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", out, false, true);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  std::vector<std::pair<std::string, Module*>> stack{{"", this}};
  while (!stack.empty()) {
    auto [name, m] = stack.back();
    stack.pop_back();
    out.emplace_back(name, m);
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it)
      stack.emplace_back(name.empty() ? it->first : name + "." + it->first, it->second.get());
  }
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", out, true, true);
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  std::map<std::string, Tensor> given(state.begin(), state.end());
  std::vector<std::string> missing, mismatched;
  const NamedTensors own = state_dict();
  for (const auto& [name, t] : own) {
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    if (it->second.shape() != t.shape())
      mismatched.push_back(fmt::format("{}: checkpoint {} vs model {}", name,
                                       shape_str(it->second.shape()), shape_str(t.shape())));
    given.erase(it);
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : given) unexpected.push_back(name);
  std::string problems;
  if (strict && !missing.empty())
    problems += fmt::format("\n  missing keys: {}", fmt::join(missing, ", "));
  if (strict && !unexpected.empty())
    problems += fmt::format("\n  unexpected keys: {}", fmt::join(unexpected, ", "));
  if (!mismatched.empty())
    problems += fmt::format("\n  shape mismatches: {}", fmt::join(mismatched, "; "));
  PW_CHECK(problems.empty(), "[load_state_dict] error(s) loading state dict:{}", problems);

  std::map<std::string, Tensor> values(state.begin(), state.end());
  NoGradGuard no_grad;
  for (const auto& [name, t] : own)
    if (auto it = values.find(name); it != values.end()) copy_into(t, it->second);
}

void Module::train(bool on) {
  for (auto& [name, m] : named_modules()) m->training_ = on;
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

std::int64_t Module::num_parameters() const {
  std::int64_t n = 0;
  for (const auto& t : parameters()) n += t.numel();
  return n;
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  t.requires_grad_(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, t);
  return t;
}

}  // namespace pw::nn
