// Checkpoints: groups of tensors (a model's weights, an optimizer's state, a model EMA's
// averages, ...) and JSON documents (the optimizer's scalars, a training loop's state, ...) in
// one safetensors file, written atomically. A tensor `name` of group `g` is stored as
// "g.name" and a document as JSON text under its key in __metadata__, so the file stays one
// that any safetensors reader opens. Nothing here knows what a group holds: the caller gives
// the groups their meaning (apps/weights.h does for the vit program's model files).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/named_tensors.h"
#include "io/safetensors.h"

namespace pw {

struct Checkpoint {
  std::map<std::string, NamedTensors> groups;   // group name (no '.') -> its tensors
  std::map<std::string, std::string> metadata;  // documents as JSON text, other strings as is
  std::string source;  // the file it was read from, for error messages ("" when built here)

  // Stores `document` as JSON text under `key`.
  void set_json(const std::string& key, const nlohmann::json& document);
  // The metadata entry `key` parsed as JSON; the error names the file, the key and the problem.
  nlohmann::json json(const std::string& key) const;
  // The tensors of group `name`; throws naming the file and the group when it has none.
  const NamedTensors& group(const std::string& name) const;
};

// Writes every group's tensors under "group." prefixes and the metadata (write_file_atomic),
// with the CRC-32 of the tensor data (kDataChecksumKey), which every read verifies.
void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);
// Reads a file that write_checkpoint wrote.
Checkpoint read_checkpoint(const std::string& path);
// Splits a parsed file into groups by the text before each tensor name's first '.'; a name
// without one, or an entry that is not floating point, is an error naming `source`.
Checkpoint checkpoint_from(const SafetensorsFile& file, std::string source);

// metadata[key] parsed as JSON; errors name `source` and `key` (absent key, invalid JSON).
nlohmann::json metadata_json(const std::map<std::string, std::string>& metadata,
                             const std::string& key, std::string_view source);

}  // namespace pw
