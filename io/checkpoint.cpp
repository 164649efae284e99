#include "io/checkpoint.h"

#include "core/error.h"

namespace pw {

void Checkpoint::set_json(const std::string& key, const nlohmann::json& document) {
  metadata[key] = document.dump();
}

nlohmann::json Checkpoint::json(const std::string& key) const {
  return metadata_json(metadata, key, source);
}

const NamedTensors& Checkpoint::group(const std::string& name) const {
  auto it = groups.find(name);
  PW_CHECK(it != groups.end(), "[checkpoint] {}: no tensors of group '{}'", source, name);
  return it->second;
}

void write_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  NamedTensors tensors;
  for (const auto& [group, members] : checkpoint.groups) {
    PW_CHECK(!group.empty() && group.find('.') == std::string::npos,
             "[checkpoint] {}: group name '{}' must be non-empty and hold no '.'", path, group);
    for (const auto& [name, t] : members) tensors.emplace_back(group + "." + name, t);
  }
  save_safetensors(path, tensors, checkpoint.metadata, /*checksum=*/true);
}

Checkpoint checkpoint_from(const SafetensorsFile& file, std::string source) {
  Checkpoint out;
  out.source = std::move(source);
  out.metadata = file.metadata;
  for (const auto& e : file.entries) {
    const auto dot = e.name.find('.');
    PW_CHECK(dot != std::string::npos && dot > 0,
             "[checkpoint] {}: tensor '{}' belongs to no group (expected 'group.name')", out.source,
             e.name);
    PW_CHECK(e.tensor.defined(), "[checkpoint] {}: tensor '{}' has dtype {}, expected a float type",
             out.source, e.name, e.dtype);
    out.groups[e.name.substr(0, dot)].emplace_back(e.name.substr(dot + 1), e.tensor);
  }
  return out;
}

Checkpoint read_checkpoint(const std::string& path) {
  return checkpoint_from(load_safetensors(path), path);
}

nlohmann::json metadata_json(const std::map<std::string, std::string>& metadata,
                             const std::string& key, std::string_view source) {
  auto it = metadata.find(key);
  PW_CHECK(it != metadata.end(), "[checkpoint] {}: no '{}' in the safetensors metadata", source,
           key);
  try {
    return nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    fail("[checkpoint] {}: metadata '{}' is not valid JSON: {}", source, key, e.what());
  }
}

}  // namespace pw
