#include "optim/ema.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/json.h"
#include "core/parallel.h"

namespace pw::optim {

ModelEma::ModelEma(NamedTensors tensors, ModelEmaOptions options)
    : tracked_(std::move(tensors)), options_(options) {
  PW_CHECK(options.decay >= 0.0 && options.decay <= 1.0,
           "[ModelEma] decay must be in [0, 1], got {}", options.decay);
  std::int64_t total = 0;
  for (const auto& [name, t] : tracked_) {
    PW_CHECK(t.defined() && t.dtype() == DType::Float32 && t.is_contiguous(),
             "[ModelEma] '{}' must be a contiguous float32 tensor", name);
    starts_.push_back(total);
    total += t.numel();
  }
  starts_.push_back(total);
  flat_ = empty({total});
  float* flat = flat_.data<float>();
  for (std::size_t i = 0; i < tracked_.size(); ++i) {
    const Tensor& t = tracked_[i].second;
    std::memcpy(flat + starts_[i], t.data<float>(),
                static_cast<std::size_t>(t.numel()) * sizeof(float));
    averages_.emplace_back(tracked_[i].first,
                           make_view(flat_, t.shape(), contiguous_strides(t.shape()), starts_[i]));
  }
}

double ModelEma::decay_at(std::int64_t updates) const {
  if (!options_.warmup) return options_.decay;
  const auto n = static_cast<double>(updates);
  return std::min(options_.decay, (1.0 + n) / (10.0 + n));
}

double ModelEma::update() {
  const double decay = decay_at(updates_);
  // Rounded once to float, as the averages are: ema = d * ema + w * value.
  const auto d = static_cast<float>(decay), w = static_cast<float>(1.0 - decay);
  std::vector<const float*> src(tracked_.size());
  for (std::size_t i = 0; i < tracked_.size(); ++i) src[i] = tracked_[i].second.data<float>();
  float* ema = flat_.data<float>();
  const std::int64_t total = starts_.back();
  // One pass over the flat buffer: each chunk finds the tensor its first element belongs to and
  // walks on through the following ones.
  parallel_for(total, kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
    auto k = static_cast<std::size_t>(std::upper_bound(starts_.begin(), starts_.end(), begin) -
                                      starts_.begin() - 1);
    for (std::int64_t i = begin; i < end; ++k) {
      const std::int64_t stop = std::min(end, starts_[k + 1]);
      const float* value = src[k];
      const std::int64_t base = starts_[k];
      for (; i < stop; ++i) ema[i] = d * ema[i] + w * value[i - base];
    }
  });
  flat_.bump_version();
  ++updates_;
  return decay;
}

void ModelEma::copy_to(const NamedTensors& dst) const {
  PW_CHECK(dst.size() == averages_.size(), "[ModelEma] copy_to: {} tensors for {} averages",
           dst.size(), averages_.size());
  for (std::size_t i = 0; i < dst.size(); ++i) {
    PW_CHECK(dst[i].first == averages_[i].first,
             "[ModelEma] copy_to: tensor {} is '{}', the average is of '{}'", i, dst[i].first,
             averages_[i].first);
    copy_into(dst[i].second, averages_[i].second);
  }
}

nlohmann::json ModelEma::state_scalars() const {
  return {{"updates", updates_}, {"decay", options_.decay}, {"warmup", options_.warmup}};
}

void ModelEma::load_state(const NamedTensors& averages, const nlohmann::json& scalars) {
  std::map<std::string, Tensor> given(averages.begin(), averages.end());
  for (const auto& [name, t] : averages_) {
    auto it = given.find(name);
    PW_CHECK(it != given.end(), "[ModelEma] load_state: no average for '{}'", name);
    PW_CHECK(it->second.shape() == t.shape(),
             "[ModelEma] load_state: '{}' has shape {}, the model {}", name,
             shape_str(it->second.shape()), shape_str(t.shape()));
    given.erase(it);
  }
  PW_CHECK(given.empty(), "[ModelEma] load_state: unexpected average '{}'",
           given.empty() ? "" : given.begin()->first);
  std::int64_t updates = 0;
  try {
    updates = json_int64(scalars.at("updates"), "[ModelEma] load_state: updates");
  } catch (const nlohmann::json::exception& e) {
    fail("[ModelEma] load_state: malformed state: {}", e.what());
  }
  PW_CHECK(updates >= 0, "[ModelEma] load_state: negative update count {}", updates);
  const std::map<std::string, Tensor> values(averages.begin(), averages.end());
  for (const auto& [name, t] : averages_) copy_into(t, values.at(name));
  updates_ = updates;
}

}  // namespace pw::optim
