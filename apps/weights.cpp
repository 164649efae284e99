#include "apps/weights.h"

#include <algorithm>
#include <map>

#include "io/safetensors.h"

namespace pw::app {
namespace {

constexpr const char* kCheckpointFormat = "patchwork-checkpoint";

std::map<std::string, std::string> model_metadata(const ModelInfo& info) {
  return {{"format", "pt"},
          {"config", models::to_json(info.config).dump()},
          {"normalization", nlohmann::json{{"scale", 1.0 / 255.0},
                                           {"mean", info.normalization.mean},
                                           {"std", info.normalization.std}}
                                .dump()},
          {"classes", nlohmann::json(info.classes).dump()},
          {"data", nlohmann::json{{"dataset", info.dataset},
                                  {"labels", info.labels},
                                  {"crop_pct", info.crop_pct},
                                  {"interpolation", "bilinear"},
                                  {"val_split", info.val_split},
                                  {"seed", info.seed}}
                       .dump()}};
}

nlohmann::json parse_json(const std::map<std::string, std::string>& meta, const std::string& key,
                          const std::string& path) {
  auto it = meta.find(key);
  PW_CHECK(it != meta.end(),
           "[load] {}: no '{}' in the safetensors metadata; not a patchwork model file", path, key);
  try {
    return nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    fail("[load] {}: metadata '{}' is not valid JSON: {}", path, key, e.what());
  }
}

}  // namespace

void save_model_weights(const std::string& path, const models::VisionTransformer& model,
                        const ModelInfo& info) {
  save_safetensors(path, model.state_dict(), model_metadata(info));
}

nlohmann::json TrainState::to_json() const {
  return {{"epoch", epoch},
          {"batch", batch},
          {"global_step", global_step},
          {"best_accuracy", best_accuracy},
          {"best_epoch", best_epoch},
          {"rng", std::vector<std::uint64_t>(rng.begin(), rng.end())},
          {"precision", precision},
          {"elapsed_seconds", elapsed_seconds},
          {"planned_steps", planned_steps},
          {"schedule_position", schedule_position},
          {"epoch_loss_sum", epoch_loss_sum},
          {"epoch_correct", epoch_correct},
          {"epoch_seen", epoch_seen},
          {"scheduler", scheduler}};
}

TrainState TrainState::from_json(const nlohmann::json& j) {
  TrainState s;
  s.epoch = j.at("epoch").get<std::int64_t>();
  s.batch = j.at("batch").get<std::int64_t>();
  s.global_step = j.at("global_step").get<std::int64_t>();
  s.best_accuracy = j.at("best_accuracy").get<double>();
  s.best_epoch = j.at("best_epoch").get<std::int64_t>();
  const auto rng = j.at("rng").get<std::vector<std::uint64_t>>();
  PW_CHECK(rng.size() == s.rng.size(), "[checkpoint] RNG state has {} words, expected {}",
           rng.size(), s.rng.size());
  std::copy(rng.begin(), rng.end(), s.rng.begin());
  s.scheduler = j.at("scheduler");
  s.precision = j.value("precision", "fp32");  // checkpoints from before bf16 trained in fp32
  s.elapsed_seconds = j.value("elapsed_seconds", 0.0);
  s.planned_steps = j.value("planned_steps", std::int64_t{0});
  // Older checkpoints: the position was the step count.
  s.schedule_position = j.value("schedule_position", static_cast<double>(s.global_step));
  s.epoch_loss_sum = j.value("epoch_loss_sum", 0.0);
  s.epoch_correct = j.value("epoch_correct", std::int64_t{0});
  s.epoch_seen = j.value("epoch_seen", std::int64_t{0});
  return s;
}

void save_checkpoint(const std::string& path, const models::VisionTransformer& model,
                     const ModelInfo& info, const optim::Optimizer& optimizer,
                     const TrainState& state, const optim::ModelEma* ema) {
  NamedTensors tensors;
  for (auto& [name, t] : model.state_dict()) tensors.emplace_back("model." + name, t);
  const optim::OptimizerState os = optimizer.state_dict();
  for (auto& [name, t] : os.tensors) tensors.emplace_back("optimizer." + name, t);
  if (ema)
    for (auto& [name, t] : ema->averages()) tensors.emplace_back("ema." + name, t);
  auto meta = model_metadata(info);
  meta["format"] = kCheckpointFormat;
  meta["optimizer"] = os.scalars.dump();
  meta["train_state"] = state.to_json().dump();
  if (ema) meta["model_ema"] = ema->state_scalars().dump();
  save_safetensors(path, tensors, meta);
}

LoadedModel load_model_file(const std::string& path) {
  const SafetensorsFile file = load_safetensors(path);
  LoadedModel out;
  try {
    out.info.config = models::config_from_json(parse_json(file.metadata, "config", path));
    const auto norm = parse_json(file.metadata, "normalization", path);
    out.info.normalization.mean = norm.at("mean").get<std::vector<double>>();
    out.info.normalization.std = norm.at("std").get<std::vector<double>>();
    out.info.classes = parse_json(file.metadata, "classes", path).get<std::vector<std::string>>();
    if (file.metadata.count("data")) {
      const auto data = parse_json(file.metadata, "data", path);
      out.info.dataset = data.value("dataset", out.info.dataset);
      out.info.labels = data.value("labels", out.info.labels);
      out.info.crop_pct = data.value("crop_pct", out.info.crop_pct);
      out.info.val_split = data.value("val_split", out.info.val_split);
      out.info.seed = data.value("seed", out.info.seed);
      PW_CHECK(out.info.crop_pct > 0 && out.info.crop_pct <= 1,
               "[load] {}: crop_pct {} is outside (0, 1]", path, out.info.crop_pct);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("[load] {}: malformed metadata: {}", path, e.what());
  } catch (const Error& e) {
    fail("[load] {}: {}", path, e.what());
  }
  auto fmt_it = file.metadata.find("format");
  out.is_checkpoint = fmt_it != file.metadata.end() && fmt_it->second == kCheckpointFormat;
  for (const auto& e : file.entries) {
    PW_CHECK(e.tensor.defined(), "[load] {}: tensor '{}' has dtype {}, expected a float type", path,
             e.name, e.dtype);
    const Tensor t =
        e.tensor.dtype() == DType::Float32 ? e.tensor : copy_contiguous(e.tensor, DType::Float32);
    if (!out.is_checkpoint) {
      out.weights.emplace_back(e.name, t);
    } else if (e.name.rfind("model.", 0) == 0) {
      out.weights.emplace_back(e.name.substr(6), t);
    } else if (e.name.rfind("optimizer.", 0) == 0) {
      out.optimizer.tensors.emplace_back(e.name.substr(10), t);
    } else if (e.name.rfind("ema.", 0) == 0) {
      out.ema.emplace_back(e.name.substr(4), t);
    }
  }
  if (out.is_checkpoint) {
    try {
      out.optimizer.scalars = parse_json(file.metadata, "optimizer", path);
      out.state = TrainState::from_json(parse_json(file.metadata, "train_state", path));
      if (file.metadata.count("model_ema"))
        out.ema_state = parse_json(file.metadata, "model_ema", path);
    } catch (const nlohmann::json::exception& e) {
      fail("[load] {}: malformed checkpoint state: {}", path, e.what());
    }
  }
  return out;
}

void load_weights_into(models::VisionTransformer& model, const NamedTensors& weights, bool strict) {
  const bool learned = model.cfg.pos_embed == "learn";
  const bool given = std::any_of(weights.begin(), weights.end(),
                                 [](const auto& w) { return w.first == "pos_embed"; });
  PW_CHECK(!strict || given == learned,
           "[load] {} key pos_embed: the weights {} learned position embedding, but the model has "
           "pos_embed='{}'",
           given ? "unexpected" : "missing", given ? "hold a" : "have no", model.cfg.pos_embed);
  NamedTensors adjusted = weights;
  for (auto& [name, t] : adjusted) {
    if (name != "pos_embed" || !learned || t.shape() == model.pos_embed.shape()) continue;
    const std::int64_t prefix = model.cls_token.defined() ? 1 : 0;
    t = models::resize_pos_embed(t, prefix, model.cfg.grid_size(), "bicubic");
  }
  model.load_state_dict(adjusted, strict);
}

std::string prepare_head_for_finetuning(const models::VisionTransformer& model,
                                        NamedTensors& weights,
                                        const std::vector<std::string>& from_classes,
                                        const std::vector<std::string>& to_classes, bool reset) {
  const auto is_head = [](const auto& entry) { return entry.first.rfind("head.", 0) == 0; };
  NamedTensors own;
  for (const auto& entry : model.state_dict())
    if (is_head(entry)) own.push_back(entry);
  std::map<std::string, Shape> given;
  for (const auto& entry : weights)
    if (is_head(entry)) given.emplace(entry.first, entry.second.shape());
  bool fits = given.size() == own.size();
  for (const auto& [name, t] : own) fits = fits && given.count(name) && given[name] == t.shape();
  // Up to ten names, for a line of the log.
  std::vector<std::string> shown(
      from_classes.begin(), from_classes.begin() + std::min<std::size_t>(from_classes.size(), 10));
  if (from_classes.size() > shown.size()) shown.push_back("...");
  const std::string summary =
      fmt::format("the weights' head classifies {} classes ({}), the data has {}",
                  from_classes.size(), fmt::join(shown, ", "), to_classes.size());
  if (fits && !reset)
    return from_classes == to_classes
               ? ""
               : fmt::format(
                     "note: {}; the head is kept, its class i now meaning the data's "
                     "class i (pass --reset-head to start it fresh)",
                     summary);
  std::erase_if(weights, is_head);
  for (const auto& [name, t] : own) weights.emplace_back(name, copy_contiguous(t));
  return fmt::format("head: {}; it is replaced by a fresh one ({})", summary,
                     fits ? "--reset-head" : "another class count, as timm's num_classes change");
}

std::unique_ptr<models::VisionTransformer> build_model(const LoadedModel& loaded) {
  auto model = std::make_unique<models::VisionTransformer>(loaded.info.config);
  load_weights_into(*model, loaded.weights);
  return model;
}

}  // namespace pw::app
