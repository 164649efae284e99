#include "apps/weights.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/json.h"
#include "io/checkpoint.h"
#include "io/file_io.h"
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

// A document of the model metadata; a file without it is not one of ours.
nlohmann::json model_json(const SafetensorsFile& file, const std::string& key,
                          const std::string& path) {
  PW_CHECK(file.metadata.count(key),
           "[load] {}: no '{}' in the safetensors metadata; not a patchwork model file", path, key);
  return metadata_json(file.metadata, key, path);
}

// The model metadata of a file (config, normalisation, classes, data); its documents are parsed
// by the caller, so that their errors name the file once.
ModelInfo parse_model_info(const nlohmann::json& config, const nlohmann::json& norm,
                           const nlohmann::json& classes, const nlohmann::json* data) {
  ModelInfo info;
  info.config = models::config_from_json(config);
  info.normalization.mean = norm.at("mean").get<std::vector<double>>();
  info.normalization.std = norm.at("std").get<std::vector<double>>();
  const auto& n = info.normalization;
  PW_CHECK(n.mean.size() == 3 && n.std.size() == 3,
           "normalization has {} means and {} stds, expected 3 (RGB)", n.mean.size(), n.std.size());
  for (std::size_t c = 0; c < n.std.size(); ++c)
    PW_CHECK(std::isfinite(n.mean[c]) && std::isfinite(n.std[c]) && n.std[c] > 0,
             "normalization of channel {} is mean {}, std {}; expected finite values, std > 0", c,
             n.mean[c], n.std[c]);
  info.classes = classes.get<std::vector<std::string>>();
  PW_CHECK(static_cast<std::int64_t>(info.classes.size()) == info.config.num_classes,
           "{} class names for a model of {} classes", info.classes.size(),
           info.config.num_classes);
  if (data) {
    info.dataset = data->value("dataset", info.dataset);
    info.labels = data->value("labels", info.labels);
    info.crop_pct = data->value("crop_pct", info.crop_pct);
    info.val_split = data->value("val_split", info.val_split);
    info.seed = data->value("seed", info.seed);
    PW_CHECK(info.crop_pct > 0 && info.crop_pct <= 1, "crop_pct {} is outside (0, 1]",
             info.crop_pct);
  }
  return info;
}

// Weights are float32 in memory whatever the file stores (BF16 files load too).
Tensor as_float32(const Tensor& t) {
  return t.dtype() == DType::Float32 ? t : copy_contiguous(t, DType::Float32);
}

}  // namespace

void save_model_weights(const std::string& path, const models::VisionTransformer& model,
                        const ModelInfo& info) {
  save_safetensors(path, model.state_dict(), model_metadata(info), /*checksum=*/true);
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
  s.epoch = json_int64(j.at("epoch"), "[checkpoint] train state: epoch");
  s.batch = json_int64(j.at("batch"), "[checkpoint] train state: batch");
  s.global_step = json_int64(j.at("global_step"), "[checkpoint] train state: global_step");
  s.best_accuracy = j.at("best_accuracy").get<double>();
  s.best_epoch = json_int64(j.at("best_epoch"), "[checkpoint] train state: best_epoch");
  const auto& rng = j.at("rng");
  PW_CHECK(rng.is_array() && rng.size() == s.rng.size(),
           "[checkpoint] RNG state has {} words, expected {}", rng.size(), s.rng.size());
  for (std::size_t i = 0; i < s.rng.size(); ++i) {
    // get<std::uint64_t>() would convert a float (or a negative number) without a word.
    PW_CHECK(rng[i].is_number_unsigned(), "[checkpoint] RNG state word {} is {}, not a 64-bit word",
             i, rng[i].dump());
    s.rng[i] = rng[i].get<std::uint64_t>();
  }
  s.scheduler = j.at("scheduler");
  s.precision = j.value("precision", "fp32");  // checkpoints from before bf16 trained in fp32
  s.elapsed_seconds = j.value("elapsed_seconds", 0.0);
  // Fields that older checkpoints lack: 0 there.
  const auto optional_int = [&](const char* key) {
    return j.contains(key) ? json_int64(j.at(key), fmt::format("[checkpoint] train state: {}", key))
                           : 0;
  };
  s.planned_steps = optional_int("planned_steps");
  // Older checkpoints: the position was the step count.
  s.schedule_position = j.value("schedule_position", static_cast<double>(s.global_step));
  s.epoch_loss_sum = j.value("epoch_loss_sum", 0.0);
  s.epoch_correct = optional_int("epoch_correct");
  s.epoch_seen = optional_int("epoch_seen");
  for (const auto& [field, value] : {std::pair<const char*, std::int64_t>{"epoch", s.epoch},
                                     {"batch", s.batch},
                                     {"global_step", s.global_step},
                                     {"planned_steps", s.planned_steps},
                                     {"epoch_correct", s.epoch_correct},
                                     {"epoch_seen", s.epoch_seen}})
    PW_CHECK(value >= 0, "[checkpoint] train_state {} is {}, expected a count >= 0", field, value);
  PW_CHECK(std::isfinite(s.elapsed_seconds) && s.elapsed_seconds >= 0,
           "[checkpoint] train_state elapsed_seconds is {}, expected a time >= 0",
           s.elapsed_seconds);
  PW_CHECK(s.precision == "fp32" || s.precision == "bf16",
           "[checkpoint] train_state precision is '{}', expected fp32 or bf16", s.precision);
  return s;
}

void save_checkpoint(const std::string& path, const models::VisionTransformer& model,
                     const ModelInfo& info, const optim::Optimizer& optimizer,
                     const TrainState& state, const optim::ModelEma* ema) {
  Checkpoint c;
  c.metadata = model_metadata(info);
  c.metadata["format"] = kCheckpointFormat;
  c.groups["model"] = model.state_dict();
  const optim::OptimizerState os = optimizer.state_dict();
  c.groups["optimizer"] = os.tensors;
  c.set_json("optimizer", os.scalars);
  c.set_json("train_state", state.to_json());
  if (ema) {
    c.groups["ema"] = ema->averages();
    c.set_json("model_ema", ema->state_scalars());
  }
  write_checkpoint(path, c);
}

LoadedModel load_model_file(const std::string& path) {
  return parse_model_file(read_file(path), path);
}

LoadedModel parse_model_file(std::span<const std::uint8_t> bytes, const std::string& path) {
  const SafetensorsFile file = parse_safetensors(bytes, path);
  LoadedModel out;
  out.source = path;
  // The documents' own errors name the file; what is wrong inside them is prefixed once below.
  const nlohmann::json config = model_json(file, "config", path);
  const nlohmann::json norm = model_json(file, "normalization", path);
  const nlohmann::json classes = model_json(file, "classes", path);
  const std::optional<nlohmann::json> data =
      file.metadata.count("data") ? std::optional(metadata_json(file.metadata, "data", path))
                                  : std::nullopt;
  try {
    out.info = parse_model_info(config, norm, classes, data ? &*data : nullptr);
  } catch (const nlohmann::json::exception& e) {
    fail("[load] {}: malformed metadata: {}", path, e.what());
  } catch (const Error& e) {
    fail("[load] {}: {}", path, e.what());
  }
  auto fmt_it = file.metadata.find("format");
  out.is_checkpoint = fmt_it != file.metadata.end() && fmt_it->second == kCheckpointFormat;
  if (!out.is_checkpoint) {
    for (const auto& e : file.entries) {
      PW_CHECK(e.tensor.defined(), "[load] {}: tensor '{}' has dtype {}, expected a float type",
               path, e.name, e.dtype);
      out.weights.emplace_back(e.name, as_float32(e.tensor));
    }
    return out;
  }
  const Checkpoint c = checkpoint_from(file, path);
  auto group = [&](const std::string& name) {
    NamedTensors tensors;
    if (auto it = c.groups.find(name); it != c.groups.end())
      for (const auto& [n, t] : it->second) tensors.emplace_back(n, as_float32(t));
    return tensors;
  };
  out.weights = group("model");
  out.optimizer.tensors = group("optimizer");
  out.ema = group("ema");
  out.optimizer.scalars = c.json("optimizer");
  const nlohmann::json state = c.json("train_state");
  if (c.metadata.count("model_ema")) out.ema_state = c.json("model_ema");
  try {
    out.state = TrainState::from_json(state);
  } catch (const nlohmann::json::exception& e) {
    fail("[load] {}: malformed checkpoint state: {}", path, e.what());
  } catch (const Error& e) {
    fail("[load] {}: {}", path, e.what());
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
    // Resized only when the width agrees: the new table's size then follows from the model.
    PW_CHECK(t.dim() == 3 && t.shape()[2] == model.cfg.dim,
             "[load] pos_embed has shape {}, which cannot be resized to the model's {}",
             shape_str(t.shape()), shape_str(model.pos_embed.shape()));
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

void check_weights_fit(const models::ViTConfig& config, const NamedTensors& weights,
                       const std::string& source) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : weights) given[name] = &t;
  for (const auto& [name, shape] : config.state_dict_shapes()) {
    auto it = given.find(name);
    PW_CHECK(it != given.end(), "[load] {}: missing tensor '{}' of shape {} that its config needs",
             source, name, shape_str(shape));
    PW_CHECK(it->second->shape() == shape,
             "[load] {}: tensor '{}' has shape {}, but its config needs {}", source, name,
             shape_str(it->second->shape()), shape_str(shape));
    given.erase(it);
  }
  PW_CHECK(given.empty(), "[load] {}: unexpected tensor '{}' that its config does not describe",
           source, given.empty() ? "" : given.begin()->first);
}

std::unique_ptr<models::VisionTransformer> build_model(const LoadedModel& loaded) {
  check_weights_fit(loaded.info.config, loaded.weights, loaded.source);
  auto model = std::make_unique<models::VisionTransformer>(loaded.info.config);
  load_weights_into(*model, loaded.weights);
  return model;
}

}  // namespace pw::app
