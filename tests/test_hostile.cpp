// Hostile files (issue 13): for each class of crafted input that once crashed, hung, corrupted
// memory, took gigabytes or was silently accepted, a small input made here and the one-line
// error it must end in. The `vit` program runs as a child process where the exit code and the
// peak memory matter; the readers are called directly for the variants.
#include <stb_image_write.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/image.h"
#include "apps/train/trainer.h"
#include "apps/weights.h"
#include "cifar_fixture.h"
#include "data/cifar10.h"
#include "data/decode.h"
#include "io/file_io.h"
#include "io/safetensors.h"
#include "vit_process.h"

using namespace pw;
using namespace pw::app;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// A one-line error naming `what`, exit code 1 or 2, a peak memory within kHostileRssLimitMb
// (plus `file_mb` for a file the program reads whole), and no hang.
void check_refused(const testing::VitRun& r, const std::string& what, long file_mb = 0) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.seconds < testing::kHostileSecondsLimit);
  CHECK(r.signal == 0);
  CHECK((r.exit_code == 1 || r.exit_code == 2));
  CHECK(r.one_line_error());
  CHECK_THAT(r.err, Contains(what));
  CHECK(r.max_rss_mb < testing::kHostileRssLimitMb + file_mb);
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  write_file_atomic(path.string(), std::span<const std::uint8_t>(bytes));
}

std::vector<std::uint8_t> bytes_of(const std::string& s) {
  return {s.begin(), s.end()};
}

models::ViTConfig tiny_config() {
  models::ViTConfig c;
  c.image_size = 8, c.patch_size = 4, c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 8;
  c.num_classes = 3;
  return c;
}

// A model file whose metadata holds `config` (any JSON) beside `tensors`.
void write_model_file(const fs::path& path, const nlohmann::json& config,
                      const NamedTensors& tensors) {
  const std::map<std::string, std::string> metadata{
      {"format", "pt"},
      {"config", config.dump()},
      {"normalization",
       R"({"scale":0.00392156862745098,"mean":[0.5,0.5,0.5],"std":[0.2,0.2,0.2]})"},
      {"classes", R"(["a","b","c"])"}};
  write_bytes(path, serialize_safetensors(tensors, metadata));
}

// The state dict of a tiny model, as a file would hold it.
NamedTensors tiny_weights() {
  Generator gen(1);
  models::VisionTransformer model(tiny_config(), gen);
  return model.state_dict();
}

}  // namespace

TEST_CASE("sizes from a weights file or a flag are checked before anything is allocated",
          "[hostile]") {
  testing::TempDir tmp("hostile-sizes");
  const nlohmann::json base = models::to_json(tiny_config());

  // dim = 2^62 once overflowed the allocation size; 2e7 allocated 9 GB before failing.
  for (const std::int64_t dim : {std::int64_t{1} << 62, std::int64_t{20'000'000}}) {
    nlohmann::json config = base;
    config["dim"] = dim;
    const fs::path file = tmp.path / "huge-dim.safetensors";
    write_model_file(file, config, {{"head.weight", zeros({3, 8})}});
    CHECK(fs::file_size(file) < 1024);
    check_refused(testing::run_vit({"summary", "--weights", file.string()}), "dim must be in");
  }
  // A valid config of 200M parameters (800 MB) in a file of one small tensor: refused from the
  // tensors present, before the model is built.
  nlohmann::json big = base;
  big["dim"] = 2048, big["depth"] = 4, big["heads"] = 16, big["mlp_dim"] = 8192;
  const fs::path big_file = tmp.path / "big-config.safetensors";
  write_model_file(big_file, big, {{"head.weight", zeros({3, 8})}});
  check_refused(testing::run_vit({"summary", "--weights", big_file.string()}),
                "missing tensor 'patch_embed.proj.weight'");

  // The same bounds on the command line.
  check_refused(testing::run_vit({"summary", "--model", "dim=20000000"}), "dim must be in");
  check_refused(testing::run_vit({"summary", "--model", "depth=4", "--model", "dim=16384"}),
                "parameters, more than the limit");
  // An integer field given as a number no int64 holds (once a float-to-int conversion, undefined
  // behaviour, found by fuzz_model_overrides) or as a fraction (once truncated without a word).
  check_refused(testing::run_vit({"summary", "--model", "depth=16111111111111111111111111111"}),
                "field 'depth' has the wrong type: expected a 64-bit integer");
  CHECK_THROWS_WITH(models::apply_overrides(tiny_config(), {"depth=1.5"}),
                    Contains("field 'depth' has the wrong type: expected a 64-bit integer"));
  CHECK_THROWS_WITH(models::apply_overrides(tiny_config(), {"heads=9223372036854775808"}),
                    Contains("field 'heads' has the wrong type: expected a 64-bit integer"));

  // `vit patches --size 1024 --scale 64` once overflowed an int product.
  const fs::path png = tmp.path / "x.png";
  data::Image img(3, 8, 8, 100);
  write_png(png, img);
  check_refused(testing::run_vit({"patches", png.string(), "--size", "1024", "--scale", "64", "-o",
                                  (tmp.path / "p.png").string()}),
                "lower --scale");

  // The checked counts themselves.
  CHECK_THROWS_WITH(numel_of({std::int64_t{1} << 40, std::int64_t{1} << 40}),
                    Contains("overflows"));
  CHECK_THROWS_WITH(empty({std::int64_t{1} << 61}, DType::Float64), Contains("overflows"));
  CHECK_THROWS_WITH(checked_mul(std::int64_t{1} << 62, 4, "test"), Contains("[test]"));
}

TEST_CASE("a model's state dict shapes are worked out from its config exactly", "[hostile]") {
  // build_model checks a file against state_dict_shapes() before building: it must describe
  // exactly the model the config builds, for every kind of stem, pool and embedding.
  for (const std::string stem : {"patch", "conv"})
    for (const std::string pool : {"cls", "mean", "attn"})
      for (const std::string pos : {"learn", "sincos", "none"})
        for (const std::int64_t heads : {1, 2}) {
          models::ViTConfig c = tiny_config();
          c.stem = stem, c.pool = pool, c.pos_embed = pos, c.heads = heads;
          c.stem_layers = 2, c.stem_channels = 4;
          c.head_hidden = heads == 1 ? 5 : 0;
          c.qkv_bias = heads == 2;
          c.head_dim = heads == 1 ? 0 : 6;
          INFO(stem << " " << pool << " " << pos << " heads " << heads);
          Generator gen(0);
          models::VisionTransformer model(c, gen);
          std::map<std::string, Shape> built, described;
          for (const auto& [name, t] : model.state_dict()) built[name] = t.shape();
          for (const auto& [name, shape] : c.state_dict_shapes()) described[name] = shape;
          CHECK(built == described);
          CHECK(c.parameter_count() == model.num_parameters());
        }
}

TEST_CASE("archive headers are checked against the data that actually follows", "[hostile]") {
  testing::TempDir tmp("hostile-archive");
  const std::string dir = "cifar-10-batches-bin/";
  const auto concat = [](std::vector<std::uint8_t> a, const auto& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };

  // A header claiming a 6 GB batch file (a whole number of records) in a few hundred bytes:
  // once allocated and zeroed 6 GB before finding the archive truncated.
  const fs::path claim = tmp.path / "claim.tar.gz";
  const auto six_gb = testing::tar_header(dir + "data_batch_1.bin", 3073ull * 2'000'000);
  testing::write_gz(claim, concat(std::vector<std::uint8_t>(six_gb.begin(), six_gb.end()),
                                  std::vector<std::uint8_t>(3073, 1)));
  CHECK(fs::file_size(claim) < 1024);
  check_refused(testing::run_vit({"train", "--data", claim.string(), "--no-progress"}),
                "truncated archive");

  // A base-256 size field too large for 64 bits (it once wrapped into a small size).
  auto base256 = testing::tar_header(dir + "data_batch_1.bin", 0);
  base256[124] = static_cast<char>(0x80);
  for (int i = 125; i < 136; ++i) base256[i] = static_cast<char>(0xFF);
  testing::set_tar_checksum(base256);
  testing::write_gz(tmp.path / "b256.tar.gz",
                    concat(std::vector<std::uint8_t>(base256.begin(), base256.end()),
                           std::vector<std::uint8_t>(1024, 0)));
  CHECK_THROWS_WITH(data::read_cifar10(tmp.path / "b256.tar.gz"), Contains("out of range"));

  // pax records whose length wraps `pos + len` (once an endless loop) or overruns the header.
  for (const std::string& record : {std::string("18446744073709551615 path=x\n"),
                                    std::string("99 path=x\n"), std::string("5 path=x\n")}) {
    const auto pax = bytes_of(record);
    const auto tar = testing::tar_bytes({{"pax", pax, 'x'}, {"test_batch.bin", {0}}});
    testing::write_gz(tmp.path / "pax.tar.gz", tar);
    CHECK_THROWS_WITH(data::read_cifar10(tmp.path / "pax.tar.gz"), Contains("corrupt pax header"));
  }
  // Well-formed, a pax path and a GNU long name still name the entry that follows them.
  const std::string path = dir + "test_batch.bin";
  const std::string body = " path=" + path + "\n";
  std::string pax = std::to_string(body.size()) + body;
  pax = std::to_string(pax.size()) + body;  // the length counts its own digits
  const std::vector<std::uint8_t> record(3073, 3);
  for (const auto& [type, named] : {std::pair<char, std::string>{'x', pax}, {'L', path}}) {
    INFO(type);
    testing::write_gz(
        tmp.path / "named.tar.gz",
        testing::tar_bytes({{"././@LongLink", bytes_of(named), type}, {"some/other/name", record}},
                           ""));
    const data::Dataset d = data::read_cifar10(tmp.path / "named.tar.gz", data::Split::Test);
    CHECK(d.size() == 1);
    CHECK(d.labels.at(0) == 3);
  }

  // With --limit-* the reader once stopped before the gzip trailer: a truncated archive passed.
  std::vector<testing::TarEntry> entries;
  for (const char* name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                           "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"})
    entries.push_back({name, std::vector<std::uint8_t>(3 * 3073, 3)});
  const fs::path whole = tmp.path / "whole.tar.gz";
  testing::write_tar_gz(whole, entries);
  CHECK_NOTHROW(data::read_cifar10(whole, 2, 2));
  std::ifstream in(whole, std::ios::binary);
  std::vector<std::uint8_t> gz((std::istreambuf_iterator<char>(in)), {});
  gz.resize(gz.size() - 12);  // the gzip trailer and the last compressed bytes
  write_bytes(tmp.path / "cut.tar.gz", gz);
  CHECK_THROWS_WITH(data::read_cifar10(tmp.path / "cut.tar.gz", 2, 2), Contains("archive"));
  // An archive without its end-of-archive marker is cut short too.
  testing::write_gz(tmp.path / "no-end.tar.gz", testing::tar_bytes(entries, dir, false));
  CHECK_THROWS_WITH(data::read_cifar10(tmp.path / "no-end.tar.gz", 2, 2),
                    Contains("end-of-archive marker"));
}

TEST_CASE("degenerate position embeddings are refused instead of read out of bounds", "[hostile]") {
  // 0 patch tokens once clamped taps into [0, -1]; 1 token on a class-token model filled the
  // grid from the class token.
  CHECK_THROWS_WITH(models::resize_pos_embed(zeros({1, 0, 8}), 0, 2), Contains("no patch tokens"));
  CHECK_THROWS_WITH(models::resize_pos_embed(zeros({1, 1, 8}), 1, 2), Contains("no patch tokens"));
  Generator gen(0);
  models::VisionTransformer model(tiny_config(), gen);
  NamedTensors weights = model.state_dict();
  for (auto& [name, t] : weights)
    if (name == "pos_embed") t = zeros({1, 1, 8});
  CHECK_THROWS_WITH(load_weights_into(model, weights), Contains("no patch tokens"));

  testing::TempDir tmp("hostile-pos");
  const fs::path file = tmp.path / "pos.safetensors";
  write_model_file(file, models::to_json(tiny_config()), weights);
  check_refused(testing::run_vit({"summary", "--weights", file.string()}),
                "tensor 'pos_embed' has shape (1,1,8), but its config needs (1,5,8)");
}

TEST_CASE("image files: promised formats only, sizes checked first, truncation refused",
          "[hostile]") {
  const auto decode = [](const std::vector<std::uint8_t>& bytes) {
    return data::decode_image(bytes, "crafted");
  };
  // A DHT segment whose code counts sum to 272 (> 256): stb 2.27 wrote past its tables.
  std::vector<std::uint8_t> jpeg{0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x13, 0x00};
  jpeg.insert(jpeg.end(), 16, 0x11);
  jpeg.resize(32, 0);
  // stb 2.30 refuses it while testing the type, as "not of any known type, or corrupt".
  CHECK_THROWS_WITH(decode(jpeg), Contains("crafted") && Contains("corrupt"));

  // A PPM whose pixels stop early was accepted with uninitialised bytes as pixels.
  auto ppm = bytes_of("P6\n4 4\n255\n");
  ppm.resize(ppm.size() + 20, 7);
  CHECK_THROWS_WITH(decode(ppm), Contains("truncated"));
  // Tiny headers claiming huge images took gigabytes; the claim is now refused before decoding.
  CHECK_THROWS_WITH(decode(bytes_of("P5 16000 16000 255\n")), Contains("more than the limit"));
  CHECK_THROWS_WITH(decode(bytes_of("P5 60000 60000 255\n")), Contains("crafted"));
  // Formats that are not promised are not decoded at all.
  CHECK_THROWS_WITH(decode(bytes_of("GIF89a\x10\x00\x10\x00\x80\x00\x00")),
                    Contains("PNG, JPEG, BMP and PPM/PGM are read"));
  CHECK_THROWS_WITH(decode(bytes_of("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n")),
                    Contains("PNG, JPEG, BMP and PPM/PGM are read"));

  // stb_image_write's output callback, into a std::vector<std::uint8_t>.
  const auto append_bytes = [](void* ctx, void* data, int n) {
    auto* out = static_cast<std::vector<std::uint8_t>*>(ctx);
    out->insert(out->end(), static_cast<std::uint8_t*>(data), static_cast<std::uint8_t*>(data) + n);
  };
  // A BMP cut short (stb feeds zeros past the end of a BMP without complaint).
  std::vector<std::uint8_t> bmp;
  std::vector<std::uint8_t> rgb(6 * 5 * 3, 200);
  stbi_write_bmp_to_func(append_bytes, &bmp, 6, 5, 3, rgb.data());
  CHECK(decode(bmp).width == 6);
  bmp.resize(bmp.size() - 20);
  CHECK_THROWS_WITH(decode(bmp), Contains("truncated"));
  // A PNG whose IDAT chunk claims 400 MB: stb grew its buffer to 800 MB before reading it.
  std::vector<std::uint8_t> png;
  stbi_write_png_to_func(append_bytes, &png, 6, 5, 3, rgb.data(), 6 * 3);
  CHECK(decode(png).width == 6);
  const std::size_t idat = 8 + 25;  // the signature, then IHDR (13 bytes of data, 12 of frame)
  REQUIRE(std::string(png.begin() + idat + 4, png.begin() + idat + 8) == "IDAT");
  auto claim = png;
  claim[idat] = 0x18, claim[idat + 1] = 0x00;  // 400 MB
  CHECK_THROWS_WITH(decode(claim), Contains("truncated") && Contains("PNG chunk IDAT"));
  auto cut = png;
  cut.resize(cut.size() - 12);  // without its IEND
  CHECK_THROWS_WITH(decode(cut), Contains("truncated"));

  // And the valid PPM it was cut from still reads.
  auto full = bytes_of("P6\n4 4\n255\n");
  full.resize(full.size() + 48, 7);
  CHECK(decode(full).height == 4);

  // Through `vit predict`: one line, exit 1, little memory.
  testing::TempDir tmp("hostile-image");
  const fs::path model = tmp.path / "m.safetensors";
  write_model_file(model, models::to_json(tiny_config()), tiny_weights());
  write_bytes(tmp.path / "x.jpg", jpeg);
  check_refused(
      testing::run_vit({"predict", "--weights", model.string(), (tmp.path / "x.jpg").string()}),
      "corrupt");
  write_bytes(tmp.path / "big.pgm", bytes_of("P5 16000 16000 255\n"));
  check_refused(
      testing::run_vit({"predict", "--weights", model.string(), (tmp.path / "big.pgm").string()}),
      "more than the limit");
}

TEST_CASE("a resumed run validates args.json exactly as the command line does", "[hostile]") {
  testing::TempDir tmp("hostile-args");
  const fs::path run = tmp.path / "run";
  fs::create_directories(run);
  write_bytes(run / "checkpoint-last.safetensors", {0});  // args.json is read before it
  const auto resume_with = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json args = TrainOptions{};
    args[key] = value;
    std::ofstream(run / "args.json") << args.dump();
    CLI::App app;
    TrainOptions cli;
    add_train_flags(app, cli);
    app.parse(std::vector<std::string>{run.string(), "--resume"});
    return merge_resume_options(cli, app);
  };
  // log_every 0 once killed `vit train --resume` with SIGFPE.
  nlohmann::json args = TrainOptions{};
  args["log_every"] = 0;
  std::ofstream(run / "args.json") << args.dump();
  check_refused(testing::run_vit({"train", "--resume", run.string()}), "--log-every");
  CHECK_THAT(testing::run_vit({"train", "--resume", run.string()}).err, Contains("args.json"));

  for (const auto& [key, value, flag] :
       {std::tuple<std::string, nlohmann::json, std::string>{"batch_size", 0, "--batch-size"},
        {"epochs", 1'000'000'000, "--epochs"},
        {"lr", -1.0, "--lr"},
        {"eval_every", 0, "--eval-every"},
        {"workers", 100, "--workers"},
        {"preset", "huge", "--preset"},
        {"opt", "lion", "--opt"},
        {"time_budget", "99999999h", "--time-budget"},
        {"decay_milestones", std::vector<int>{10, -3}, "--decay-milestones"},
        {"recipe", "unknown", "--recipe"}}) {
    INFO(key);
    CHECK_THROWS_WITH(resume_with(key, value), Contains("args.json") && Contains(flag));
  }
  CHECK_THROWS_WITH(resume_with("log_every", "often"), Contains("args.json"));
  CHECK_NOTHROW(resume_with("log_every", 5));
}

TEST_CASE("checkpoints carry a checksum, and a damaged one names checkpoint-best", "[hostile]") {
  testing::TempDir tmp("hostile-ckpt");
  testing::write_synthetic_cifar(tmp.path / "data", 16, 8);
  const fs::path run = tmp.path / "runs" / "run";
  const auto train_args = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> flags{"--batch-size", "8"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    return testing::train_args(tmp.path.string(), "run",
                               {"depth=1", "dim=16", "heads=2", "mlp_dim=16"}, flags);
  };
  REQUIRE(testing::run_vit(train_args({"--epochs", "3", "--stop-after-steps", "4"})).exit_code ==
          0);
  const fs::path last = run / "checkpoint-last.safetensors";
  const SafetensorsFile f = load_safetensors(last.string());
  CHECK(f.metadata.count(kDataChecksumKey) == 1);

  // One flipped bit in the last tensor byte: once resumed silently with a changed weight.
  std::vector<std::uint8_t> bytes = read_file(last.string());
  bytes[bytes.size() - 1] ^= 0x10;
  write_bytes(last, bytes);
  CHECK_THROWS_WITH(load_model_file(last.string()), Contains("damaged") && Contains("CRC-32"));
  const auto r = testing::run_vit({"train", "--resume", run.string()});
  check_refused(r, "checkpoint-best.safetensors");
  CHECK_THAT(r.err, Contains("is damaged") &&
                        Contains("--resume " + (run / "checkpoint-best.safetensors").string()));
  // The way named works, and finishes the run.
  const auto resumed =
      testing::run_vit({"train", "--resume", (run / "checkpoint-best.safetensors").string()});
  INFO(resumed.out << resumed.err);
  CHECK(resumed.exit_code == 0);
  CHECK_THAT(resumed.out, !Contains("-100.00%") && !Contains("final unknown"));
}

TEST_CASE("a safetensors header of arrays, or of too many tensors, is refused before it is built",
          "[hostile]") {
  const auto file_with_header = [](const std::string& header) {
    // Sized up front (insert after the prefix trips a false -Warray-bounds in GCC 12).
    std::vector<std::uint8_t> bytes(8 + header.size());
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<std::uint8_t>(header.size() >> (8 * i));
    std::copy(header.begin(), header.end(), bytes.begin() + 8);
    return bytes;
  };
  CHECK_THROWS_WITH(parse_safetensors(file_with_header("[[],[]]")),
                    Contains("header is not a JSON object"));
  CHECK_THROWS_WITH(parse_safetensors(file_with_header(R"({"a":{"b":{"c":[]}}})")),
                    Contains("nests deeper than a safetensors header"));
  std::string rank = R"({"t":{"dtype":"F32","shape":[)";
  for (int i = 0; i < 65; ++i) rank += i ? ",1" : "1";
  rank += R"(],"data_offsets":[0,4]}})";
  CHECK_THROWS_WITH(parse_safetensors(file_with_header(rank)), Contains("more than 64 values"));
  std::string many = "{";
  for (std::size_t i = 0; i <= kMaxTensors; ++i)
    many += fmt::format(R"({}"t{}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})",
                        i ? "," : "", i);
  many += "}";
  CHECK_THROWS_WITH(parse_safetensors(file_with_header(many)),
                    Contains("more than 100000 tensors"));

  // 100 MB of "[]," once took 2 GB to reject.
  testing::TempDir tmp("hostile-header");
  std::string arrays = "[";
  arrays.reserve(100'000'000);
  while (arrays.size() < 100'000'000 - 4) arrays += "[],";
  arrays += "[]]";
  const fs::path file = tmp.path / "arrays.safetensors";
  write_bytes(file, file_with_header(arrays));
  arrays.clear();
  arrays.shrink_to_fit();
  check_refused(testing::run_vit({"summary", "--weights", file.string()}),
                "header is not a JSON object", 100);
}

TEST_CASE("a model file's errors name the file once", "[hostile]") {
  testing::TempDir tmp("hostile-prefix");
  nlohmann::json config = models::to_json(tiny_config());
  config["depth"] = 0;
  const fs::path file = tmp.path / "m.safetensors";
  write_model_file(file, config, tiny_weights());
  try {
    load_model_file(file.string());
    FAIL("loaded a model of depth 0");
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Contains("depth must be in"));
    CHECK(what.find(file.string()) == what.rfind(file.string()));
    CHECK(what.find("[load]") == what.rfind("[load]"));
  }
}

TEST_CASE("stale temporary files of killed writes are found and removed", "[hostile]") {
  testing::TempDir tmp("hostile-tmp");
  // A process that has exited: its pid names no process now (it could be reused, but not
  // within this test).
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const fs::path stale = tmp.path / fmt::format("checkpoint-last.safetensors.tmp.{}", dead);
  const fs::path live = tmp.path / fmt::format("metrics.jsonl.tmp.{}", ::getppid());
  const fs::path other = tmp.path / "notes.tmp.txt";
  for (const auto& p : {stale, live, other}) write_bytes(p, {1});
  const auto removed = remove_stale_temporaries(tmp.path.string());
  CHECK(removed == std::vector<std::string>{stale.string()});
  CHECK(!fs::exists(stale));
  CHECK(fs::exists(live));
  CHECK(fs::exists(other));
}
