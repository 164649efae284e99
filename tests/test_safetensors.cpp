// safetensors reader/writer and the atomic file I/O beneath it. Malformed files are built by
// hand here, one defect each, to check that the reader names the problem instead of reading
// out of bounds (run once under -fsanitize=address to confirm).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "io/checkpoint.h"
#include "io/file_io.h"
#include "io/safetensors.h"

using namespace pw;
using Catch::Matchers::Contains;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A safetensors file from a literal header (padded to 8 with spaces unless told otherwise).
Bytes make_file(std::string header, const Bytes& data = {}, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  // Built as a string (vector::insert into a fresh 8-byte vector trips a false
  // -Warray-bounds in GCC 12).
  std::string text(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) text[i] = static_cast<char>(n >> (8 * i));
  text += header;
  text.append(data.begin(), data.end());
  Bytes out(text.begin(), text.end());
  return out;
}

template <typename T>
Bytes le_bytes(std::initializer_list<T> values) {
  Bytes out(values.size() * sizeof(T));
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
}

std::string parse_error(const Bytes& file) {
  try {
    parse_safetensors(file, "test.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// A fresh empty directory for file tests, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           fmt::format("pw_safetensors_test_{}_{}", ::getpid(), counter()++);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::size_t count() const {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(path),
                                                  std::filesystem::directory_iterator()));
  }
};

std::string as_text(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = copy_contiguous(a), cb = copy_contiguous(b);
  const auto n = static_cast<std::size_t>(a.numel()) * dtype_size(a.dtype());
  return n == 0 || std::memcmp(ca.raw_data(), cb.raw_data(), n) == 0;
}

}  // namespace

TEST_CASE("tensors and metadata survive a round trip bit for bit", "[safetensors]") {
  Generator gen(3);
  Tensor w = randn({3, 4}, gen);
  Tensor special = from_vector(std::vector<float>{-0.0f, std::numeric_limits<float>::infinity(),
                                                  std::numeric_limits<float>::quiet_NaN(),
                                                  std::numeric_limits<float>::denorm_min(), 1e38f},
                               {5});
  Tensor d = randn({2, 2, 2}, gen, DType::Float64);
  Tensor scalar = full({}, 7.5);
  Tensor none = zeros({2, 0, 3});
  // A transposed view: the writer must store its values row-major, not its storage order.
  Tensor base = arange(0, 6);
  Tensor transposed = make_view(base, {3, 2}, {1, 3}, 0);
  REQUIRE_FALSE(transposed.is_contiguous());

  NamedTensors in = {{"w", w},           {"special", special}, {"d", d},
                     {"scalar", scalar}, {"none", none},       {"t", transposed}};
  std::map<std::string, std::string> meta = {{"step", "120"}, {"note", "ünïcödé, \"quoted\""}};
  SafetensorsFile out = parse_safetensors(serialize_safetensors(in, meta));

  CHECK(out.metadata == meta);
  std::vector<std::string> names;
  for (const auto& e : out.entries) names.push_back(e.name);
  // Data order: F64 before F32, then by name.
  CHECK(names == std::vector<std::string>{"d", "none", "scalar", "special", "t", "w"});
  for (const auto& [name, t] : in) {
    INFO(name);
    const auto& e = out.at(name);
    CHECK(e.dtype == (t.dtype() == DType::Float32 ? "F32" : "F64"));
    CHECK(e.shape == t.shape());
    CHECK(e.raw.empty());
    CHECK(same_bits(out.tensor(name), t));
  }
  CHECK(out.tensor("t").to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK_THROWS_WITH(out.at("missing"), "[safetensors] no tensor named 'missing'");
  CHECK(out.contains("w"));
  CHECK_FALSE(out.contains("missing"));
}

TEST_CASE("the writer's bytes match the format byte for byte", "[safetensors]") {
  SECTION("one F32 tensor: length prefix, compact JSON, space padding, data") {
    // A (1,1,2,3) view of 0..5, to check the shape list too.
    Bytes file =
        serialize_safetensors({{"attn0", make_view(arange(0, 6), {1, 1, 2, 3}, {6, 6, 3, 1}, 0)}});
    const std::string json = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
    REQUIRE(json.size() == 65);                     // so 7 spaces pad the header to 72
    std::string expected("\x48\0\0\0\0\0\0\0", 8);  // 72, little-endian u64
    expected += json + std::string(7, ' ');
    // 0.0f, 1.0f = 0x3F800000, 2.0f = 0x40000000, 3.0f = 0x40400000, ... little-endian.
    expected += std::string(
        "\0\0\0\0"
        "\0\0\x80\x3F"
        "\0\0\0\x40"
        "\0\0\x40\x40"
        "\0\0\x80\x40"
        "\0\0\xA0\x40",
        24);
    CHECK(as_text(file) == expected);
  }
  SECTION("metadata comes first; an empty file is '{}' padded to 8") {
    CHECK(serialize_safetensors({}) == make_file("{}      ", {}, false));
    CHECK(as_text(serialize_safetensors({})) == std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
    Bytes file = serialize_safetensors({}, {{"framework", "pt"}});
    const std::string json = R"({"__metadata__":{"framework":"pt"}})";  // 35 bytes -> 40
    CHECK(file.size() == 48);
    CHECK(file[0] == 40);
    CHECK(as_text(file).substr(8) == json + "     ");
  }
  SECTION("mixed dtypes: F64 data first, then F32 by name, offsets contiguous") {
    Bytes file = serialize_safetensors(
        {{"b", full({1}, 2.0)}, {"a", full({1}, 1.0)}, {"c", full({1}, 3.0, DType::Float64)}});
    const std::string json = R"({"c":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})";
    const std::size_t padded = (json.size() + 7) / 8 * 8;
    REQUIRE(file.size() == 8 + padded + 16);
    CHECK(file[0] == padded);
    CHECK(as_text(file).substr(8, padded) == json + std::string(padded - json.size(), ' '));
    Bytes data(file.end() - 16, file.end());
    Bytes expected = le_bytes<double>({3.0});
    for (Bytes f : {le_bytes<float>({1.0f}), le_bytes<float>({2.0f})}) {
      expected.insert(expected.end(), f.begin(), f.end());
    }
    CHECK(data == expected);
  }
}

TEST_CASE("the writer rejects names the format cannot hold", "[safetensors]") {
  CHECK_THROWS_WITH(serialize_safetensors({{"a", zeros({1})}, {"a", zeros({2})}}),
                    "[safetensors] tensor name 'a' appears twice");
  CHECK_THROWS_WITH(serialize_safetensors({{"__metadata__", zeros({1})}}),
                    "[safetensors] '__metadata__' cannot name a tensor");
  CHECK_THROWS_WITH(serialize_safetensors({{"a", Tensor()}}),
                    "[safetensors] tensor 'a' is undefined");
  CHECK_THROWS_WITH(serialize_safetensors({{"\xff", zeros({1})}}), Contains("not valid UTF-8"));
}

TEST_CASE("the reader accepts other dtypes and header orders", "[safetensors]") {
  // F16: 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal), -0.0, inf.
  Bytes f16 = le_bytes<std::uint16_t>({0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00});
  Bytes bf16 = le_bytes<std::uint16_t>({0x3F80, 0x4049});  // 1.0, 3.140625
  Bytes i64 = le_bytes<std::int64_t>({-5, 1LL << 40});
  Bytes i32 = le_bytes<std::int32_t>({7});
  Bytes flags = {1, 0, 1};
  Bytes data;
  for (const Bytes* b : {&i64, &i32, &f16, &bf16, &flags})
    data.insert(data.end(), b->begin(), b->end());
  // Listed out of data order, as older writers did: the reader orders by offsets.
  const std::string good = R"({"flags":{"dtype":"BOOL","shape":[3],"data_offsets":[36,39]},)"
                           R"("h":{"dtype":"F16","shape":[2,3],"data_offsets":[20,32]},)"
                           R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[32,36]},)"
                           R"("steps":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
                           R"("label":{"dtype":"I32","shape":[],"data_offsets":[16,20]},)"
                           R"("__metadata__":{"format":"pt"}})";
  SafetensorsFile f = parse_safetensors(make_file(good, data));
  std::vector<std::string> names;
  for (const auto& e : f.entries) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"steps", "label", "h", "b", "flags"});
  CHECK(f.metadata.at("format") == "pt");

  const Tensor& h = f.tensor("h");
  CHECK(h.dtype() == DType::Float32);
  CHECK(h.shape() == Shape{2, 3});
  auto hv = h.to_vector();
  CHECK(hv[0] == 1.0f);
  CHECK(hv[1] == -2.0f);
  CHECK(hv[2] == 65504.0f);
  CHECK(hv[3] == std::ldexp(1.0f, -24));
  CHECK((hv[4] == 0.0f && std::signbit(hv[4])));
  CHECK(hv[5] == std::numeric_limits<float>::infinity());
  CHECK(f.tensor("b").to_vector() == std::vector<float>{1.0f, 3.140625f});

  CHECK(f.at("steps").to_int64() == std::vector<std::int64_t>{-5, 1LL << 40});
  CHECK(f.at("label").to_int64() == std::vector<std::int64_t>{7});
  CHECK(f.at("label").shape.empty());
  CHECK(f.at("flags").to_int64() == std::vector<std::int64_t>{1, 0, 1});
  CHECK(f.at("flags").raw == flags);
  CHECK_THROWS_WITH(f.tensor("steps"),
                    "[safetensors] tensor 'steps' has dtype I64, not a floating-point type");
  CHECK_THROWS_WITH(f.at("h").to_int64(),
                    "[safetensors] tensor 'h' has dtype F16, not an integer type");

  // A dtype pw cannot compute with still loads, as raw bytes.
  SafetensorsFile fp8 = parse_safetensors(
      make_file(R"({"q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", {9, 8}));
  CHECK(fp8.at("q").raw == Bytes{9, 8});
  CHECK_FALSE(fp8.at("q").tensor.defined());
}

TEST_CASE("the reader names each defect of a malformed file", "[safetensors]") {
  const std::string one = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const Bytes eight(8, 0);
  REQUIRE(parse_error(make_file(one, eight)) == "no error");

  SECTION("length prefix") {
    CHECK(parse_error(Bytes{1, 2, 3}) ==
          "[safetensors] test.safetensors: 3 bytes is too short to hold the 8-byte header length");
    Bytes f = make_file(one, eight);
    f[0] = static_cast<std::uint8_t>(f[0] + 100);  // claims more header than the file holds
    CHECK_THAT(parse_error(f),
               Contains("header length 156 exceeds the 64 bytes that follow the length prefix"));
    Bytes huge = {0x01, 0xE1, 0xF5, 0x05, 0, 0, 0, 0};  // 100,000,001
    CHECK_THAT(parse_error(huge),
               Contains("header length 100000001 exceeds the limit of 100000000 bytes"));
    Bytes max(8, 0xFF);
    CHECK_THAT(parse_error(max), Contains("exceeds the limit"));
  }
  SECTION("header text") {
    CHECK_THAT(parse_error(make_file("{\"a\":1 \xC3\x28}")),
               Contains("header is not valid UTF-8 (bad byte 0xC3 at header offset 7)"));
    CHECK_THAT(parse_error(make_file("{\"\xED\xA0\x80\":1}")),
               Contains("not valid UTF-8"));  // surrogate
    CHECK_THAT(parse_error(make_file("{\"\xC0\xAF\":1}")),
               Contains("not valid UTF-8"));  // overlong
    CHECK_THAT(parse_error(make_file(R"({"a":)")), Contains("header is not valid JSON"));
    CHECK_THAT(parse_error(make_file("{} {}")), Contains("header is not valid JSON"));
    CHECK_THAT(parse_error(make_file("[1, 2]")), Contains("header is not a JSON object"));
    CHECK_THAT(parse_error(make_file("\"text\"")), Contains("header is not a JSON object"));
    CHECK_THAT(parse_error(make_file("{}", {}, false)), Contains("no error"));
    CHECK_THAT(
        parse_error(make_file(R"({"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})")),
        Contains("nests deeper than a safetensors header"));
    CHECK_THAT(parse_error(make_file(std::string(1000, '['))),
               Contains("header is not a JSON object"));
  }
  SECTION("duplicate keys, which JSON parsers usually resolve silently") {
    CHECK_THAT(parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                     R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                     eight)),
               Contains("duplicate key 'a' in header"));
    CHECK_THAT(
        parse_error(make_file(
            R"({"a":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})", eight)),
        Contains("duplicate key 'dtype'"));
    CHECK_THAT(parse_error(make_file(R"({"__metadata__":{"k":"1","k":"2"}})")),
               Contains("duplicate key 'k'"));
  }
  SECTION("entry fields") {
    auto entry = [&](const std::string& fields) {
      return parse_error(make_file(R"({"a":{)" + fields + "}}", eight));
    };
    CHECK(parse_error(make_file(R"({"a":[1]})")) ==
          "[safetensors] test.safetensors: tensor 'a' is not a JSON object");
    CHECK(entry(R"("shape":[2],"data_offsets":[0,8])") ==
          "[safetensors] test.safetensors: tensor 'a' has no 'dtype'");
    CHECK_THAT(entry(R"("dtype":"F32","data_offsets":[0,8])"),
               Contains("tensor 'a' has no 'shape'"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[2])"), Contains("tensor 'a' has no 'data_offsets'"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[2],"data_offsets":[0,8],"strides":[1])"),
               Contains("tensor 'a' has unknown field 'strides'"));
    CHECK_THAT(entry(R"("dtype":32,"shape":[2],"data_offsets":[0,8])"),
               Contains("tensor 'a': dtype must be a string"));
    CHECK_THAT(entry(R"("dtype":"F31","shape":[2],"data_offsets":[0,8])"),
               Contains("tensor 'a' has unknown dtype 'F31'"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":2,"data_offsets":[0,8])"),
               Contains("tensor 'a': shape must be an array"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[-2],"data_offsets":[0,8])"),
               Contains("tensor 'a': shape must hold non-negative integers"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[2.0],"data_offsets":[0,8])"),
               Contains("shape must hold non-negative integers"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":["2"],"data_offsets":[0,8])"),
               Contains("shape must hold non-negative integers"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[2],"data_offsets":[0,8,16])"),
               Contains("tensor 'a': data_offsets must be an array [begin, end]"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[2],"data_offsets":{"b":0})"),
               Contains("data_offsets must be an array [begin, end]"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[2],"data_offsets":[0,-8])"),
               Contains("data_offsets must hold non-negative integers"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8])"),
               Contains("tensor 'a': shape [4294967296,4294967296] is too large"));
    CHECK_THAT(entry(R"("dtype":"F32","shape":[9223372036854775808,0],"data_offsets":[0,0])"),
               Contains("is too large"));
    CHECK_THAT(entry(R"("dtype":"F4","shape":[3],"data_offsets":[0,8])"),
               Contains("elements of F4 do not fill whole bytes"));
  }
  SECTION("offsets") {
    CHECK(parse_error(
              make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight)) ==
          "[safetensors] test.safetensors: tensor 'a': data_offsets [8, 0] end before they begin");
    CHECK(parse_error(
              make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight)) ==
          "[safetensors] test.safetensors: tensor 'a': dtype F32 and shape [3] need 12 bytes but "
          "data_offsets [0, 8] span 8");
    const Bytes sixteen(16, 0);
    CHECK(parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                sixteen)) ==
          "[safetensors] test.safetensors: tensor 'b' (bytes [4, 12]) overlaps tensor 'a' (bytes "
          "[0, 8])");
    CHECK(parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
                                sixteen)) ==
          "[safetensors] test.safetensors: gap of 4 bytes before tensor 'b' (bytes [12, 16])");
    CHECK_THAT(
        parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight)),
        Contains("gap of 4 bytes before tensor 'a'"));
    // Two tensors claiming the same bytes.
    CHECK_THAT(parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                     eight)),
               Contains("overlaps tensor 'a'"));
  }
  SECTION("data must end exactly where the file ends") {
    Bytes nine(9, 0), seven(7, 0);
    CHECK(parse_error(make_file(one, nine)) ==
          "[safetensors] test.safetensors: tensor data ends at byte 8 but the data section holds 9 "
          "bytes");
    CHECK_THAT(parse_error(make_file(one, seven)),
               Contains("tensor data ends at byte 8 but the data section holds 7 bytes"));
    // Offsets far past the end are caught before any data is read.
    CHECK_THAT(parse_error(make_file(
                   R"({"a":{"dtype":"U8","shape":[1000000000],"data_offsets":[0,1000000000]}})")),
               Contains("tensor data ends at byte 1000000000 but the data section holds 0 bytes"));
  }
  SECTION("metadata") {
    CHECK_THAT(parse_error(make_file(R"({"__metadata__":{"epoch":3}})")),
               Contains("__metadata__ value of 'epoch' is not a string"));
    CHECK_THAT(parse_error(make_file(R"({"__metadata__":["x"]})")),
               Contains("__metadata__ is not a JSON object"));
  }
}

TEST_CASE("save and load go through the file system atomically", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("weights.safetensors");
  Tensor w = randn({4, 5});
  save_safetensors(path, {{"w", w}}, {{"epoch", "1"}});
  CHECK(dir.count() == 1);  // no temporary file left behind
  SafetensorsFile f = load_safetensors(path);
  CHECK(same_bits(f.tensor("w"), w));
  CHECK(f.metadata.at("epoch") == "1");
  CHECK(read_file(path) == serialize_safetensors({{"w", w}}, {{"epoch", "1"}}));

  // Errors from a file name it.
  write_file_atomic(path, std::string_view("short"));
  CHECK_THROWS_WITH(load_safetensors(path),
                    Contains(path + ": 5 bytes is too short to hold the 8-byte header length"));
  CHECK_THROWS_WITH(load_safetensors(dir.file("missing.safetensors")),
                    "[read_file] cannot open '" + dir.file("missing.safetensors") +
                        "': No such file or directory");
}

TEST_CASE("a checkpoint keeps its groups and JSON documents apart", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("checkpoint.safetensors");
  Generator gen(3);
  const Tensor w = randn({3, 2}, gen), m = randn({3, 2}, gen), v = randn({2}, gen, DType::Float64);
  Checkpoint c;
  c.groups["model"] = {{"fc.weight", w}};
  c.groups["optimizer"] = {{"fc.weight.exp_avg", m}, {"step", v}};
  c.metadata["format"] = "test";
  c.set_json("train_state", {{"epoch", 2}, {"lr", 0.5}});
  write_checkpoint(path, c);

  // Stored under "group." prefixes: any safetensors reader sees the full names.
  const SafetensorsFile file = load_safetensors(path);
  CHECK(same_bits(file.tensor("model.fc.weight"), w));
  CHECK(same_bits(file.tensor("optimizer.fc.weight.exp_avg"), m));
  CHECK(file.metadata.at("train_state") == R"({"epoch":2,"lr":0.5})");

  const Checkpoint back = read_checkpoint(path);
  CHECK(back.source == path);
  REQUIRE(back.groups.size() == 2);
  REQUIRE(back.group("model").size() == 1);
  CHECK(back.group("model")[0].first == "fc.weight");
  CHECK(same_bits(back.group("model")[0].second, w));
  // Entries come back in the file's data order (float64 before float32), names intact.
  const NamedTensors& opt = back.group("optimizer");
  REQUIRE(opt.size() == 2);
  CHECK(opt[0].first == "step");
  CHECK(same_bits(opt[0].second, v));  // float64 stays float64
  CHECK(opt[1].first == "fc.weight.exp_avg");
  CHECK(same_bits(opt[1].second, m));
  CHECK(back.metadata.at("format") == "test");
  CHECK(back.json("train_state").at("epoch") == 2);

  // Errors name the file and what is missing or wrong.
  CHECK_THROWS_WITH(back.group("ema"), Contains(path) && Contains("no tensors of group 'ema'"));
  CHECK_THROWS_WITH(back.json("scheduler"), Contains(path) && Contains("no 'scheduler'"));
  CHECK_THROWS_WITH(back.json("format"),
                    Contains(path) && Contains("metadata 'format' is not valid JSON"));
  save_safetensors(path, {{"loose", w}});
  CHECK_THROWS_WITH(read_checkpoint(path),
                    Contains(path) && Contains("tensor 'loose' belongs to no group"));
  c.groups["a.b"] = {{"x", w}};
  CHECK_THROWS_WITH(write_checkpoint(path, c), Contains("group name 'a.b'"));
}

TEST_CASE("write_file_atomic keeps the old file when writing fails", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("checkpoint.bin");
  write_file_atomic(path, std::string_view("old contents"));
  REQUIRE(read_text_file(path) == "old contents");

  // The writer throws after writing more than the sink buffers, so bytes did reach the disk.
  const std::vector<std::uint8_t> chunk(1 << 20, 0xAB);
  CHECK_THROWS_WITH(write_file_atomic(path,
                                      [&](FileSink& sink) {
                                        sink.write(chunk.data(), chunk.size());
                                        sink.write("half");
                                        CHECK(sink.bytes_written() == chunk.size() + 4);
                                        throw Error("disk full, say");
                                      }),
                    "disk full, say");
  CHECK(read_text_file(path) == "old contents");
  CHECK(dir.count() == 1);

  // A successful write replaces the contents wholesale.
  write_file_atomic(path, std::span<const std::uint8_t>(chunk));
  CHECK(read_file(path) == chunk);
  CHECK(dir.count() == 1);

  const std::string nowhere = dir.file("no/such/dir/file.bin");
  CHECK_THROWS_WITH(
      write_file_atomic(nowhere, std::string_view("x")),
      Contains("cannot create '" + nowhere + ".tmp.") && Contains("No such file or directory"));
  CHECK_THROWS_WITH(read_file(dir.path.string()), Contains("is a directory"));
}
