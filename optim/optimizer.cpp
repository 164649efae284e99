#include "optim/optimizer.h"

#include <charconv>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "core/json.h"

namespace pw::optim {

Tensor ParamState::find(const std::string& name) const {
  auto it = buffers.find(name);
  return it == buffers.end() ? Tensor() : it->second;
}

std::vector<ParamGroup> make_groups(const std::vector<GroupSpec>& specs,
                                    const ParamGroup& defaults) {
  std::vector<ParamGroup> groups;
  groups.reserve(specs.size());
  for (const GroupSpec& spec : specs) {
    ParamGroup g = defaults;
    g.params = spec.params;
    if (spec.lr) g.lr = *spec.lr;
    if (spec.weight_decay) g.weight_decay = *spec.weight_decay;
    groups.push_back(std::move(g));
  }
  return groups;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  std::set<const TensorImpl*> seen;
  std::size_t count = 0;
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    g.initial_lr = g.lr;
    for (std::size_t pi = 0; pi < g.params.size(); ++pi) {
      const Tensor& p = g.params[pi];
      PW_CHECK(p.defined(), "[Optimizer] parameter {} of group {} is undefined", pi, gi);
      PW_CHECK(p.is_leaf(), "[Optimizer] parameter {} of group {} is not a leaf tensor", pi, gi);
      PW_CHECK(p.is_contiguous(),
               "[Optimizer] parameter {} of group {} (shape {}) is not contiguous", pi, gi,
               shape_str(p.shape()));
      PW_CHECK(seen.insert(p.impl()).second,
               "[Optimizer] parameter {} of group {} appears more than once", pi, gi);
      ++count;
    }
  }
  state_.resize(count);
}

void Optimizer::step() {
  NoGradGuard no_grad;
  std::size_t index = 0;
  for (const ParamGroup& g : groups_) {
    for (const Tensor& p : g.params) {
      ParamState& st = state_[index++];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      PW_CHECK(grad.dtype() == p.dtype(), "[{}] gradient of dtype {} for a parameter of dtype {}",
               name(), dtype_name(grad.dtype()), dtype_name(p.dtype()));
      if (!grad.is_contiguous()) grad = copy_contiguous(grad);
      update(g, p, grad, st);
      p.bump_version();
    }
  }
}

void Optimizer::zero_grad() {
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) p.zero_grad();
}

namespace {

nlohmann::json group_to_json(const ParamGroup& g, std::size_t first_index) {
  nlohmann::json j;
  j["lr"] = g.lr;
  j["initial_lr"] = g.initial_lr;
  j["weight_decay"] = g.weight_decay;
  j["maximize"] = g.maximize;
  j["momentum"] = g.momentum;
  j["dampening"] = g.dampening;
  j["nesterov"] = g.nesterov;
  j["betas"] = {g.beta1, g.beta2};
  j["eps"] = g.eps;
  j["amsgrad"] = g.amsgrad;
  std::vector<std::size_t> indices(g.params.size());
  for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = first_index + i;
  j["params"] = indices;
  return j;
}

void group_from_json(const nlohmann::json& j, ParamGroup& g) {
  g.lr = j.at("lr").get<double>();
  g.initial_lr = j.at("initial_lr").get<double>();
  g.weight_decay = j.at("weight_decay").get<double>();
  g.maximize = j.at("maximize").get<bool>();
  g.momentum = j.at("momentum").get<double>();
  g.dampening = j.at("dampening").get<double>();
  g.nesterov = j.at("nesterov").get<bool>();
  g.beta1 = j.at("betas").at(0).get<double>();
  g.beta2 = j.at("betas").at(1).get<double>();
  g.eps = j.at("eps").get<double>();
  g.amsgrad = j.at("amsgrad").get<bool>();
}

}  // namespace

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;
  out.scalars["optimizer"] = name();
  out.scalars["param_groups"] = nlohmann::json::array();
  out.scalars["state"] = nlohmann::json::object();
  std::size_t index = 0;
  for (const ParamGroup& g : groups_) {
    out.scalars["param_groups"].push_back(group_to_json(g, index));
    index += g.params.size();
  }
  for (std::size_t i = 0; i < state_.size(); ++i) {
    const ParamState& st = state_[i];
    if (st.step == 0 && st.buffers.empty()) continue;
    out.scalars["state"][std::to_string(i)] = {{"step", st.step}};
    for (const auto& [buffer_name, t] : st.buffers)
      out.tensors.emplace_back(fmt::format("state.{}.{}", i, buffer_name), copy_contiguous(t));
  }
  return out;
}

namespace {

// A parameter index as a saved state spells it ("state.<index>..."): decimal digits only.
std::size_t parse_index(std::string_view text, std::string_view optimizer, std::string_view where) {
  std::size_t i = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
  PW_CHECK(!text.empty() && ec == std::errc() && end == text.data() + text.size(),
           "[{}] load_state_dict: '{}' in {} is not a parameter index", optimizer, text, where);
  return i;
}

}  // namespace

void Optimizer::load_state_dict(const OptimizerState& state) {
  const nlohmann::json& s = state.scalars;
  PW_CHECK(s.is_object() && s.contains("optimizer") && s.contains("param_groups"),
           "[{}] load_state_dict: not an optimizer state (no 'optimizer' / 'param_groups')",
           name());
  const std::string saved = s.at("optimizer").get<std::string>();
  PW_CHECK(saved == name(), "[{}] load_state_dict: the state was saved by {}", name(), saved);
  const nlohmann::json& groups = s.at("param_groups");
  PW_CHECK(groups.size() == groups_.size(),
           "[{}] load_state_dict: the state has {} parameter groups, the optimizer {}", name(),
           groups.size(), groups_.size());
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    const std::size_t saved_count = groups[gi].at("params").size();
    PW_CHECK(saved_count == groups_[gi].params.size(),
             "[{}] load_state_dict: group {} has {} parameters in the state, {} in the optimizer",
             name(), gi, saved_count, groups_[gi].params.size());
  }

  // Index every parameter, then build the new state completely before replacing anything,
  // so that a failed load leaves the optimizer as it was.
  std::vector<const Tensor*> params;
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) params.push_back(&p);

  std::vector<ParamState> new_state(params.size());
  if (s.contains("state")) {
    for (const auto& [key, value] : s.at("state").items()) {
      const std::size_t i = parse_index(key, name(), "the state's keys");
      PW_CHECK(i < params.size(), "[{}] load_state_dict: state for parameter {} of {}", name(), i,
               params.size());
      new_state[i].step = json_int64(
          value.at("step"), fmt::format("[{}] load_state_dict: step of parameter {}", name(), i));
    }
  }
  for (const auto& [tensor_name, t] : state.tensors) {
    // "state.<index>.<buffer>"
    const std::size_t dot1 = tensor_name.find('.');
    const std::size_t dot2 = tensor_name.find('.', dot1 + 1);
    PW_CHECK(tensor_name.rfind("state.", 0) == 0 && dot2 != std::string::npos,
             "[{}] load_state_dict: unexpected tensor name '{}'", name(), tensor_name);
    const std::size_t i = parse_index(
        std::string_view(tensor_name).substr(dot1 + 1, dot2 - dot1 - 1), name(), tensor_name);
    const std::string buffer = tensor_name.substr(dot2 + 1);
    PW_CHECK(i < params.size(), "[{}] load_state_dict: '{}' names parameter {} of {}", name(),
             tensor_name, i, params.size());
    PW_CHECK(t.defined() && t.shape() == params[i]->shape(),
             "[{}] load_state_dict: '{}' has shape {}, parameter {} has shape {}", name(),
             tensor_name, t.defined() ? shape_str(t.shape()) : "(undefined)", i,
             shape_str(params[i]->shape()));
    // Like PyTorch, state is cast to the parameter's dtype; the copy owns its memory.
    new_state[i].buffers[buffer] = copy_contiguous(t, params[i]->dtype());
  }

  std::vector<ParamGroup> new_groups = groups_;
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    group_from_json(groups[gi], new_groups[gi]);
    validate(new_groups[gi]);
  }
  groups_ = std::move(new_groups);
  state_ = std::move(new_state);
}

}  // namespace pw::optim
