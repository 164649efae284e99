#include "io/safetensors.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/file_io.h"

namespace pw {

// The format is little-endian; pw tensors are stored in host order, so we copy bytes as is.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace {

// The reference implementation's limit: larger headers are rejected before they are parsed.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  std::string_view code;
  std::uint32_t bits;  // per element; the sub-byte float formats pack several into a byte
};

// Every dtype of the reference implementation, so that a valid file is never rejected merely
// for holding a type that pw cannot compute with.
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", 8},    {"U8", 8},   {"I8", 8},      {"F8_E5M2", 8}, {"F8_E4M3", 8},
    {"F8_E8M0", 8}, {"F4", 4},   {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"I16", 16},
    {"U16", 16},    {"F16", 16}, {"BF16", 16},   {"I32", 32},    {"U32", 32},
    {"F32", 32},    {"C64", 64}, {"F64", 64},    {"I64", 64},    {"U64", 64},
};

const DTypeInfo* find_dtype(std::string_view code) {
  for (const auto& info : kDTypes) {
    if (info.code == code) return &info;
  }
  return nullptr;
}

std::string_view code_of(DType t) {
  return t == DType::Float32 ? "F32" : t == DType::Float64 ? "F64" : "BF16";
}

// Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and code points
// above U+10FFFF included), or npos when the text is valid.
std::size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// IEEE half precision to float, exactly (every half value is a float value).
float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h & 0x3FFu;
  std::uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // inf or nan (payload kept)
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(bits);
}

// ---- writer ----

// The header (padded) and the tensors in data order, contiguous.
struct Layout {
  std::string header;
  std::vector<std::pair<std::string, Tensor>> tensors;
};

std::size_t nbytes_of(const Tensor& t) {
  return static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype());
}

std::string crc32_hex(std::uint32_t crc) {
  return fmt::format("{:08x}", crc);
}

Layout plan_layout(const NamedTensors& tensors, std::map<std::string, std::string> metadata,
                   bool checksum) {
  // The checksum is the writer's own: one read from another file (a loaded file's metadata
  // written again) describes other data.
  metadata.erase(kDataChecksumKey);
  std::set<std::string_view> seen;
  for (const auto& [name, t] : tensors) {
    PW_CHECK(name != "__metadata__", "[safetensors] '__metadata__' cannot name a tensor");
    PW_CHECK(seen.insert(name).second, "[safetensors] tensor name '{}' appears twice", name);
    PW_CHECK(t.defined(), "[safetensors] tensor '{}' is undefined", name);
    PW_CHECK(find_invalid_utf8(name) == std::string_view::npos,
             "[safetensors] tensor name '{}' is not valid UTF-8", name);
  }
  for (const auto& [key, value] : metadata) {
    PW_CHECK(find_invalid_utf8(key) == std::string_view::npos &&
                 find_invalid_utf8(value) == std::string_view::npos,
             "[safetensors] metadata entry '{}' is not valid UTF-8", key);
  }

  Layout layout;
  for (const auto& [name, t] : tensors) {
    layout.tensors.emplace_back(name, t.is_contiguous() ? t : copy_contiguous(t));
  }
  // The reference writer's order: larger element types first (keeps every tensor aligned to
  // its element size, since the header is padded to 8), then by name.
  std::sort(layout.tensors.begin(), layout.tensors.end(), [](const auto& a, const auto& b) {
    const auto sa = dtype_size(a.second.dtype()), sb = dtype_size(b.second.dtype());
    return sa != sb ? sa > sb : a.first < b.first;
  });

  if (checksum) {
    uLong crc = crc32_z(0, Z_NULL, 0);
    for (const auto& [name, t] : layout.tensors)
      crc = crc32_z(crc, static_cast<const Bytef*>(t.raw_data()), nbytes_of(t));
    metadata[kDataChecksumKey] = crc32_hex(static_cast<std::uint32_t>(crc));
  }
  // ordered_json keeps insertion order, so the header lists tensors in data order and the
  // fields in the order the reference writer uses.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : layout.tensors) {
    const auto nbytes = static_cast<std::uint64_t>(nbytes_of(t));
    header[name] = {{"dtype", code_of(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  layout.header = header.dump();
  layout.header.append((8 - layout.header.size() % 8) % 8, ' ');
  return layout;
}

void write_layout(const Layout& layout, const std::function<void(const void*, std::size_t)>& out) {
  std::uint8_t prefix[8];
  std::uint64_t n = layout.header.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<std::uint8_t>(n >> (8 * i));
  out(prefix, sizeof(prefix));
  out(layout.header.data(), layout.header.size());
  for (const auto& [name, t] : layout.tensors) {
    out(t.raw_data(), nbytes_of(t));
  }
}

// ---- reader ----

struct EntryInfo {
  std::string name;
  const DTypeInfo* dtype;
  Shape shape;
  std::uint64_t begin, end;
};

// Scans a header's JSON without building it, rejecting what nlohmann would otherwise accept
// silently (a repeated key: it keeps the last one) and what no safetensors header holds: a root
// that is an array, containers nested deeper than an entry's shape or data_offsets, more than
// kMaxRank values in an array, more than kMaxTensors entries. A 100 MB header of '[' or of "[],"
// would otherwise allocate gigabytes of JSON values before being found wrong. Smaller misshapes
// (an entry that is an array, data_offsets given as an object) pass here and get their own
// message from parse_entry. This is nlohmann's SAX interface rather than its parse callback: the
// callback parser looks through the enclosing object at every object's end, so a header of
// 100,000 entries took minutes there; the scan is linear.
class HeaderScan {
 public:
  explicit HeaderScan(std::string_view source) : source_(source) {}

  bool start_object(std::size_t) { return open(false); }
  bool start_array(std::size_t) { return open(true); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(std::int64_t) { return value(); }
  bool number_unsigned(std::uint64_t) { return value(); }
  bool number_float(double, const std::string&) { return value(); }
  bool string(std::string&) { return value(); }
  bool binary(std::vector<std::uint8_t>&) { return value(); }
  bool key(std::string& key) {
    // The root holds the tensors and __metadata__; the other objects are entries (three
    // fields) and the metadata strings.
    if (open_.size() == 1 && key != "__metadata__")
      PW_CHECK(++tensors_ <= kMaxTensors, "[safetensors] {}: header describes more than {} tensors",
               source_, kMaxTensors);
    PW_CHECK(++total_keys_ <= 5 * kMaxTensors, "[safetensors] {}: header has more than {} keys",
             source_, 5 * kMaxTensors);
    PW_CHECK(open_.back().keys.insert(key).second, "[safetensors] {}: duplicate key '{}' in header",
             source_, key);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    fail("[safetensors] {}: header is not valid JSON: {}", source_, e.what());
  }

 private:
  struct Container {
    bool is_array;
    std::size_t values = 0;      // an array's element count
    std::set<std::string> keys;  // an object's keys
  };

  bool value() {
    if (!open_.empty() && open_.back().is_array)
      PW_CHECK(++open_.back().values <= kMaxRank,
               "[safetensors] {}: header JSON has an array of more than {} values", source_,
               kMaxRank);
    return true;
  }
  bool open(bool is_array) {
    const std::size_t depth = open_.size();
    PW_CHECK(depth > 0 || !is_array, "[safetensors] {}: header is not a JSON object", source_);
    // Below the root only an entry or __metadata__ (objects) holds containers.
    PW_CHECK(depth < 3 && (depth < 2 || !open_.back().is_array),
             "[safetensors] {}: header JSON nests deeper than a safetensors header", source_);
    value();
    open_.push_back(Container{is_array, 0, {}});
    return true;
  }
  bool close() {
    open_.pop_back();
    return true;
  }

  std::string_view source_;
  std::vector<Container> open_;  // innermost last
  std::size_t total_keys_ = 0, tensors_ = 0;
};

// The header's JSON, built only after HeaderScan has bounded it.
nlohmann::json parse_header_json(std::string_view text, std::string_view source) {
  HeaderScan scan(source);
  nlohmann::json::sax_parse(text, &scan);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("[safetensors] {}: header is not valid JSON: {}", source, e.what());
  }
}

std::uint64_t as_u64(const nlohmann::json& v, std::string_view what, std::string_view name,
                     std::string_view source) {
  PW_CHECK(v.is_number_unsigned(),
           "[safetensors] {}: tensor '{}': {} must hold non-negative integers", source, name, what);
  return v.get<std::uint64_t>();
}

EntryInfo parse_entry(const std::string& name, const nlohmann::json& j, std::string_view source) {
  PW_CHECK(j.is_object(), "[safetensors] {}: tensor '{}' is not a JSON object", source, name);
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    PW_CHECK(j.contains(field), "[safetensors] {}: tensor '{}' has no '{}'", source, name, field);
  }
  // An unknown field might change how the bytes are to be read (strides, say), so it is an
  // error rather than something to skip.
  for (const auto& [key, value] : j.items()) {
    PW_CHECK(key == "dtype" || key == "shape" || key == "data_offsets",
             "[safetensors] {}: tensor '{}' has unknown field '{}'", source, name, key);
  }
  EntryInfo e{name, nullptr, {}, 0, 0};
  const auto& dtype = j["dtype"];
  PW_CHECK(dtype.is_string(), "[safetensors] {}: tensor '{}': dtype must be a string", source,
           name);
  e.dtype = find_dtype(dtype.get_ref<const std::string&>());
  PW_CHECK(e.dtype != nullptr, "[safetensors] {}: tensor '{}' has unknown dtype '{}'", source, name,
           dtype.get_ref<const std::string&>());

  const auto& shape = j["shape"];
  PW_CHECK(shape.is_array(), "[safetensors] {}: tensor '{}': shape must be an array", source, name);
  std::uint64_t bits = e.dtype->bits;
  for (const auto& d : shape) {
    const std::uint64_t extent = as_u64(d, "shape", name, source);
    PW_CHECK(extent <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) &&
                 !__builtin_mul_overflow(bits, extent, &bits),
             "[safetensors] {}: tensor '{}': shape {} is too large", source, name, shape.dump());
    e.shape.push_back(static_cast<std::int64_t>(extent));
  }

  const auto& offsets = j["data_offsets"];
  PW_CHECK(offsets.is_array() && offsets.size() == 2,
           "[safetensors] {}: tensor '{}': data_offsets must be an array [begin, end]", source,
           name);
  e.begin = as_u64(offsets[0], "data_offsets", name, source);
  e.end = as_u64(offsets[1], "data_offsets", name, source);
  PW_CHECK(e.begin <= e.end,
           "[safetensors] {}: tensor '{}': data_offsets [{}, {}] end before they begin", source,
           name, e.begin, e.end);
  PW_CHECK(bits % 8 == 0,
           "[safetensors] {}: tensor '{}': {} elements of {} do not fill whole bytes", source, name,
           shape.dump(), e.dtype->code);
  PW_CHECK(e.end - e.begin == bits / 8,
           "[safetensors] {}: tensor '{}': dtype {} and shape {} need {} bytes but data_offsets "
           "[{}, {}] span {}",
           source, name, e.dtype->code, shape.dump(), bits / 8, e.begin, e.end, e.end - e.begin);
  return e;
}

std::map<std::string, std::string> parse_metadata(const nlohmann::json& j,
                                                  std::string_view source) {
  PW_CHECK(j.is_object(), "[safetensors] {}: __metadata__ is not a JSON object", source);
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : j.items()) {
    PW_CHECK(value.is_string(), "[safetensors] {}: __metadata__ value of '{}' is not a string",
             source, key);
    metadata.emplace(key, value.get<std::string>());
  }
  return metadata;
}

SafetensorsEntry make_entry(const EntryInfo& info, const std::uint8_t* data) {
  SafetensorsEntry entry{info.name, std::string(info.dtype->code), info.shape, Tensor(), {}};
  const auto nbytes = static_cast<std::size_t>(info.end - info.begin);
  const std::string_view code = info.dtype->code;
  if (code == "F32" || code == "F64" || code == "BF16") {
    entry.tensor = empty(info.shape, code == "F32"   ? DType::Float32
                                     : code == "F64" ? DType::Float64
                                                     : DType::BFloat16);
    if (nbytes > 0) std::memcpy(entry.tensor.raw_data(), data, nbytes);
  } else if (code == "F16") {
    entry.tensor = empty(info.shape, DType::Float32);
    float* out = entry.tensor.data<float>();
    for (std::size_t i = 0; i < nbytes / 2; ++i)
      out[i] = half_to_float(static_cast<std::uint16_t>(data[2 * i] | (data[2 * i + 1] << 8)));
  } else {
    entry.raw.assign(data, data + nbytes);
  }
  return entry;
}

}  // namespace

std::vector<std::int64_t> SafetensorsEntry::to_int64() const {
  const std::string_view code = dtype;
  auto convert = [&]<typename T>() {
    std::vector<std::int64_t> out(raw.size() / sizeof(T));
    for (std::size_t i = 0; i < out.size(); ++i) {
      T v;
      std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
      if constexpr (std::is_same_v<T, std::uint64_t>) {
        PW_CHECK(v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
                 "[safetensors] tensor '{}': U64 value {} does not fit in int64", name, v);
      }
      out[i] = static_cast<std::int64_t>(v);
    }
    return out;
  };
  if (code == "BOOL" || code == "U8") return convert.operator()<std::uint8_t>();
  if (code == "I8") return convert.operator()<std::int8_t>();
  if (code == "I16") return convert.operator()<std::int16_t>();
  if (code == "U16") return convert.operator()<std::uint16_t>();
  if (code == "I32") return convert.operator()<std::int32_t>();
  if (code == "U32") return convert.operator()<std::uint32_t>();
  if (code == "I64") return convert.operator()<std::int64_t>();
  if (code == "U64") return convert.operator()<std::uint64_t>();
  fail("[safetensors] tensor '{}' has dtype {}, not an integer type", name, dtype);
}

bool SafetensorsFile::contains(std::string_view name) const {
  return std::any_of(entries.begin(), entries.end(), [&](const auto& e) { return e.name == name; });
}

const SafetensorsEntry& SafetensorsFile::at(std::string_view name) const {
  for (const auto& e : entries) {
    if (e.name == name) return e;
  }
  fail("[safetensors] no tensor named '{}'", name);
}

const Tensor& SafetensorsFile::tensor(std::string_view name) const {
  const auto& e = at(name);
  PW_CHECK(e.tensor.defined(), "[safetensors] tensor '{}' has dtype {}, not a floating-point type",
           name, e.dtype);
  return e.tensor;
}

std::vector<std::uint8_t> serialize_safetensors(const NamedTensors& tensors,
                                                const std::map<std::string, std::string>& metadata,
                                                bool checksum) {
  const Layout layout = plan_layout(tensors, metadata, checksum);
  std::size_t total = 8 + layout.header.size();
  for (const auto& [name, t] : layout.tensors) total += nbytes_of(t);
  // Sized up front and filled with memcpy (vector::insert into an empty vector also trips
  // a false -Wstringop-overflow in GCC 12).
  std::vector<std::uint8_t> bytes(total);
  std::size_t used = 0;
  write_layout(layout, [&](const void* p, std::size_t n) {
    if (n > 0) std::memcpy(bytes.data() + used, p, n);
    used += n;
  });
  return bytes;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata, bool checksum) {
  // Streams the tensors to the file instead of building the whole file in memory first.
  const Layout layout = plan_layout(tensors, metadata, checksum);
  write_file_atomic(path, [&](FileSink& sink) {
    write_layout(layout, [&](const void* p, std::size_t n) { sink.write(p, n); });
  });
}

SafetensorsFile parse_safetensors(std::span<const std::uint8_t> bytes, std::string_view source) {
  PW_CHECK(bytes.size() >= 8,
           "[safetensors] {}: {} bytes is too short to hold the 8-byte header length", source,
           bytes.size());
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  const std::uint64_t available = bytes.size() - 8;
  PW_CHECK(n <= kMaxHeaderBytes, "[safetensors] {}: header length {} exceeds the limit of {} bytes",
           source, n, kMaxHeaderBytes);
  PW_CHECK(n <= available,
           "[safetensors] {}: header length {} exceeds the {} bytes that follow the length prefix",
           source, n, available);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8),
                              static_cast<std::size_t>(n));
  const auto bad = find_invalid_utf8(text);
  PW_CHECK(bad == std::string_view::npos,
           "[safetensors] {}: header is not valid UTF-8 (bad byte 0x{:02X} at header offset {})",
           source, bad == std::string_view::npos ? 0 : static_cast<unsigned char>(text[bad]), bad);

  const nlohmann::json header = parse_header_json(text, source);
  PW_CHECK(header.is_object(), "[safetensors] {}: header is not a JSON object", source);

  SafetensorsFile file;
  std::vector<EntryInfo> infos;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      file.metadata = parse_metadata(value, source);
    } else {
      infos.push_back(parse_entry(key, value, source));
    }
  }

  // Files need not list tensors in data order; sorted by offsets they must tile the data
  // section exactly, with no gap and no overlap.
  std::sort(infos.begin(), infos.end(), [](const EntryInfo& a, const EntryInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t expected = 0;
  const EntryInfo* previous = nullptr;
  for (const auto& e : infos) {
    PW_CHECK(e.begin >= expected,
             "[safetensors] {}: tensor '{}' (bytes [{}, {}]) overlaps tensor '{}' (bytes [{}, {}])",
             source, e.name, e.begin, e.end, previous ? previous->name : "",
             previous ? previous->begin : 0, expected);
    PW_CHECK(e.begin == expected,
             "[safetensors] {}: gap of {} bytes before tensor '{}' (bytes [{}, {}])", source,
             e.begin - expected, e.name, e.begin, e.end);
    expected = e.end;
    previous = &e;
  }
  const std::uint64_t data_bytes = available - n;
  PW_CHECK(expected == data_bytes,
           "[safetensors] {}: tensor data ends at byte {} but the data section holds {} bytes",
           source, expected, data_bytes);

  // Only now, with every offset known to lie inside the buffer, is the data read.
  const std::uint8_t* data = bytes.data() + 8 + n;
  if (auto it = file.metadata.find(kDataChecksumKey); it != file.metadata.end()) {
    const auto crc = crc32_hex(static_cast<std::uint32_t>(
        crc32_z(crc32_z(0, Z_NULL, 0), data, static_cast<std::size_t>(data_bytes))));
    PW_CHECK(it->second == crc,
             "[safetensors] {}: the tensor data is damaged: its CRC-32 is {}, the header's {} "
             "says {}",
             source, crc, kDataChecksumKey, it->second);
  }
  for (const auto& e : infos) file.entries.push_back(make_entry(e, data + e.begin));
  return file;
}

SafetensorsFile load_safetensors(const std::string& path) {
  const auto bytes = read_file(path);
  return parse_safetensors(bytes, path);
}

}  // namespace pw
