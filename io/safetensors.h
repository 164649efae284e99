// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of UTF-8 JSON mapping each tensor name to {"dtype", "shape", "data_offsets"} (plus an
// optional "__metadata__" object of strings), then the tensors' row-major little-endian bytes.
// The reader validates the whole header before it touches the data, so a hostile or truncated
// file yields a pw::Error rather than a read out of bounds.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/named_tensors.h"
#include "core/tensor.h"

namespace pw {

// One tensor of a safetensors file.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // the file's dtype code: "F32", "BF16", "I64", ...
  Shape shape;
  // Floating-point entries: F32, F64 and BF16 as stored, F16 widened to float32.
  // Undefined for dtypes that pw tensors cannot hold (integers, BOOL, FP8, ...).
  Tensor tensor;
  // The stored bytes of the entries without a pw tensor; empty for floating-point entries.
  std::vector<std::uint8_t> raw;

  // The values of an integer or BOOL entry (labels, step counters) as int64.
  std::vector<std::int64_t> to_int64() const;
};

// A parsed file: entries in the order of their data, and the "__metadata__" strings.
struct SafetensorsFile {
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;

  bool contains(std::string_view name) const;
  // The entry called `name`; throws naming it when absent.
  const SafetensorsEntry& at(std::string_view name) const;
  // The floating-point tensor called `name`; throws when absent or not floating point.
  const Tensor& tensor(std::string_view name) const;
};

// The metadata key of the data section's CRC-32 (zlib's polynomial, 8 lowercase hex digits).
// The writers add it when asked (`checksum`), and the reader verifies it whenever a file has
// it, so that a flipped bit in the tensor data is an error instead of a silently different
// model. Other readers see one more metadata string.
inline constexpr const char* kDataChecksumKey = "data_crc32";

// The reader's limits beyond the reference's 100 MB header: a header may describe at most
// this many tensors, each of at most kMaxRank dimensions, so that a hostile header cannot
// make the JSON it parses into many times larger than itself.
inline constexpr std::size_t kMaxTensors = 100'000;
inline constexpr std::size_t kMaxRank = 64;

// The bytes of a safetensors file holding `tensors` (F32/F64/BF16, any strides) and `metadata`.
// Layout follows the reference writer: data ordered by descending dtype size, then by name;
// "__metadata__" first in the header; header padded with spaces to a multiple of 8 bytes.
// `checksum` adds kDataChecksumKey to the metadata; a kDataChecksumKey already in `metadata`
// (read from another file) is dropped either way.
std::vector<std::uint8_t> serialize_safetensors(
    const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {},
    bool checksum = false);
// Writes serialize_safetensors' bytes to `path` atomically (see write_file_atomic).
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      bool checksum = false);

// Parses and validates a whole file held in memory (verifying its checksum when it has one);
// `source` names it in error messages.
SafetensorsFile parse_safetensors(std::span<const std::uint8_t> bytes,
                                  std::string_view source = "<memory>");
// Reads and parses `path`.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace pw
