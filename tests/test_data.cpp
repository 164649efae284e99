// CIFAR pipeline: the CIFAR-10 and CIFAR-100 readers (folder and .tar.gz, malformed inputs),
// locating the data, every augmentation on tiny known images, Mixup/CutMix, normalisation, and
// the Loader's determinism across threads, resume, wait accounting, shutdown and errors.
#include <stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "cifar_fixture.h"
#include "data/augment.h"
#include "data/autoaugment.h"
#include "data/cifar10.h"
#include "data/datasets.h"
#include "data/loader.h"
#include "data/locate.h"
#include "data/mix.h"

using namespace pw;
using namespace pw::data;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           fmt::format("pw_data_test_{}_{}", static_cast<long>(getpid()), counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The synthetic records: record r of the whole split (train continues across files) has label
// (r * 3) % 10 and pixel p of channel c equal to (r * 7 + c * 11 + p) % 256.
std::uint8_t pixel(std::int64_t r, int c, int p) {
  return static_cast<std::uint8_t>((r * 7 + c * 11 + p) % 256);
}
std::uint8_t label_of(std::int64_t r) {
  return static_cast<std::uint8_t>((r * 3) % 10);
}

std::vector<std::uint8_t> make_records(std::int64_t first, std::int64_t n) {
  std::vector<std::uint8_t> bytes;
  for (std::int64_t r = first; r < first + n; ++r) {
    bytes.push_back(label_of(r));
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) bytes.push_back(pixel(r, c, p));
  }
  return bytes;
}

void write_file(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> to_bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

const std::string kMeta = "c0\nc1\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9\n\n";

// 4 records in each of the five train files (20 in all) and 6 in the test file.
std::vector<std::pair<std::string, std::vector<std::uint8_t>>> synthetic_files() {
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> files;
  for (int k = 0; k < 5; ++k)
    files.emplace_back(fmt::format("data_batch_{}.bin", k + 1), make_records(4 * k, 4));
  files.emplace_back("test_batch.bin", make_records(100, 6));
  files.emplace_back("batches.meta.txt", to_bytes(kMeta));
  return files;
}

void write_folder(const fs::path& dir) {
  for (const auto& [name, bytes] : synthetic_files()) write_file(dir / name, bytes);
}

// A ustar archive of the entries (under `folder`/), gzipped with zlib.
void write_tar_gz(const fs::path& path,
                  const std::vector<std::pair<std::string, std::vector<std::uint8_t>>>& entries,
                  const std::string& folder = "cifar-10-batches-bin") {
  std::vector<testing::TarEntry> tar;
  for (const auto& [name, bytes] : entries) tar.push_back({name, bytes});
  testing::write_tar_gz(path, tar, folder + "/");
}

void check_split(const Dataset& d, std::int64_t first_record, std::int64_t n) {
  REQUIRE(d.size() == n);
  REQUIRE(d.images.size() == static_cast<std::size_t>(n * kImageBytes));
  bool pixels_ok = true;
  for (std::int64_t i = 0; i < n; ++i) {
    CHECK(d.labels[i] == label_of(first_record + i));
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p)
        pixels_ok = pixels_ok && d.image(i)[c * 1024 + p] == pixel(first_record + i, c, p);
  }
  CHECK(pixels_ok);
}

}  // namespace

// ---------------------------------------------------------------- reader

TEST_CASE("the reader takes the folder, its parent and the archive with identical results",
          "[data]") {
  TempDir tmp;
  write_folder(tmp.path / "extracted" / "cifar-10-batches-bin");
  write_tar_gz(tmp.path / "cifar-10-binary.tar.gz", synthetic_files());

  for (const fs::path& source : {tmp.path / "extracted" / "cifar-10-batches-bin",
                                 tmp.path / "extracted", tmp.path / "cifar-10-binary.tar.gz"}) {
    INFO(source.string());
    const Cifar10 c = read_cifar10(source);
    check_split(c.train, 0, 20);
    check_split(c.test, 100, 6);
    CHECK(c.train.class_names ==
          std::vector<std::string>{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"});
    // `limit` keeps the first records of the split, across file boundaries.
    check_split(read_cifar10(source, Split::Train, 6), 0, 6);
    check_split(read_cifar10(source, Split::Test, 2), 100, 2);
  }
}

TEST_CASE("archive members may come in any order and batches.meta.txt is optional", "[data]") {
  TempDir tmp;
  auto files = synthetic_files();
  files.pop_back();  // no meta: the official names are used
  std::swap(files[0], files[3]);
  std::swap(files[1], files[5]);
  write_tar_gz(tmp.path / "a.tar.gz", files);
  const Cifar10 c = read_cifar10(tmp.path / "a.tar.gz");
  check_split(c.train, 0, 20);
  check_split(c.test, 100, 6);
  CHECK(c.test.class_names == default_class_names());
  check_split(read_cifar10(tmp.path / "a.tar.gz", Split::Train, 9), 0, 9);
}

TEST_CASE("malformed data is rejected with a message naming the file and the problem", "[data]") {
  TempDir tmp;
  const fs::path dir = tmp.path / "cifar-10-batches-bin";

  SECTION("a .bin whose size is not a multiple of 3073") {
    write_folder(dir);
    auto bytes = make_records(0, 2);
    bytes.resize(bytes.size() + 5, 0);
    write_file(dir / "data_batch_2.bin", bytes);
    CHECK_THROWS_WITH(read_cifar10(dir, Split::Train),
                      Contains("data_batch_2.bin has 6151 bytes, which is not a multiple of the "
                               "3073-byte record"));
  }
  SECTION("an empty .bin") {
    write_folder(dir);
    write_file(dir / "test_batch.bin", {});
    CHECK_THROWS_WITH(read_cifar10(dir, Split::Test), Contains("test_batch.bin is empty"));
  }
  SECTION("a label above 9") {
    write_folder(dir);
    auto bytes = make_records(0, 4);
    bytes[2 * kRecordBytes] = 10;
    write_file(dir / "data_batch_1.bin", bytes);
    CHECK_THROWS_WITH(read_cifar10(dir, Split::Train),
                      Contains("data_batch_1.bin: record 2 has label 10, expected 0..9"));
  }
  SECTION("a missing batch file in a folder") {
    write_folder(dir);
    fs::remove(dir / "data_batch_3.bin");
    CHECK_THROWS_WITH(read_cifar10(dir, Split::Train),
                      Contains("missing batch file") && Contains("data_batch_3.bin"));
    CHECK_NOTHROW(read_cifar10(dir, Split::Test));
  }
  SECTION("a missing batch file in an archive") {
    auto files = synthetic_files();
    files.erase(files.begin() + 2);
    write_tar_gz(tmp.path / "a.tar.gz", files);
    CHECK_THROWS_WITH(read_cifar10(tmp.path / "a.tar.gz"),
                      Contains("a.tar.gz: missing batch file data_batch_3.bin"));
  }
  SECTION("a truncated archive") {
    write_tar_gz(tmp.path / "a.tar.gz", synthetic_files());
    fs::resize_file(tmp.path / "a.tar.gz", fs::file_size(tmp.path / "a.tar.gz") / 2);
    CHECK_THROWS_WITH(read_cifar10(tmp.path / "a.tar.gz"), Contains("a.tar.gz: truncated archive"));
  }
  SECTION("a corrupt tar header") {
    auto files = synthetic_files();
    write_tar_gz(tmp.path / "a.tar.gz", files);
    // Rewrite the archive with one flipped byte in the second header's name field.
    gzFile f = gzopen((tmp.path / "a.tar.gz").string().c_str(), "rb");
    std::vector<std::uint8_t> tar(1 << 20);
    const int n = gzread(f, tar.data(), static_cast<unsigned>(tar.size()));
    gzclose(f);
    tar.resize(static_cast<std::size_t>(n));
    const std::size_t second = 512 + (4 * kRecordBytes + 511) / 512 * 512;
    tar[second + 30] ^= 0x40;
    f = gzopen((tmp.path / "a.tar.gz").string().c_str(), "wb");
    gzwrite(f, tar.data(), static_cast<unsigned>(tar.size()));
    gzclose(f);
    CHECK_THROWS_WITH(read_cifar10(tmp.path / "a.tar.gz"), Contains("bad tar header checksum"));
  }
  SECTION("a path without the data") {
    CHECK_THROWS_WITH(read_cifar10(tmp.path), Contains("holds neither the CIFAR-10 .bin files"));
  }
}

// ---------------------------------------------------------------- CIFAR-100

namespace {

// CIFAR-100 records: 1 coarse byte, 1 fine byte, 3072 pixel bytes. Record r has coarse label
// (r * 7) % 20, fine label (r * 3 + 1) % 100 and the pixels of pixel(r, c, p).
std::uint8_t coarse_of(std::int64_t r) {
  return static_cast<std::uint8_t>((r * 7) % 20);
}
std::uint8_t fine_of(std::int64_t r) {
  return static_cast<std::uint8_t>((r * 3 + 1) % 100);
}

std::vector<std::uint8_t> make_cifar100_records(std::int64_t first, std::int64_t n) {
  std::vector<std::uint8_t> bytes;
  for (std::int64_t r = first; r < first + n; ++r) {
    bytes.push_back(coarse_of(r));
    bytes.push_back(fine_of(r));
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) bytes.push_back(pixel(r, c, p));
  }
  return bytes;
}

std::string numbered_names(const std::string& prefix, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += fmt::format("{}{}\n", prefix, i);
  return s;
}

// 12 training and 5 test records, and both name files (as the official archive has them).
std::vector<std::pair<std::string, std::vector<std::uint8_t>>> cifar100_files() {
  return {{"coarse_label_names.txt", to_bytes(numbered_names("coarse", 20))},
          {"fine_label_names.txt", to_bytes(numbered_names("fine", 100))},
          {"train.bin", make_cifar100_records(0, 12)},
          {"test.bin", make_cifar100_records(200, 5)}};
}

void check_cifar100_split(const Dataset& d, std::int64_t first, std::int64_t n, bool fine) {
  REQUIRE(d.size() == n);
  REQUIRE(d.images.size() == static_cast<std::size_t>(n * kImageBytes));
  bool pixels_ok = true;
  for (std::int64_t i = 0; i < n; ++i) {
    CHECK(d.labels[static_cast<std::size_t>(i)] ==
          (fine ? fine_of(first + i) : coarse_of(first + i)));
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p)
        pixels_ok = pixels_ok && d.image(i)[c * 1024 + p] == pixel(first + i, c, p);
  }
  CHECK(pixels_ok);
  CHECK(d.class_names.size() == (fine ? 100u : 20u));
  CHECK(d.class_names[3] == (fine ? "fine3" : "coarse3"));
}

}  // namespace

TEST_CASE("a CIFAR-100 file reads with the right fine and coarse labels", "[data][cifar100]") {
  TempDir tmp;
  const fs::path dir = tmp.path / "cifar-100-binary";
  for (const auto& [name, bytes] : cifar100_files()) write_file(dir / name, bytes);
  write_tar_gz(tmp.path / "a" / "cifar-100-binary.tar.gz", cifar100_files(), "cifar-100-binary");
  const auto& fine = cifar100_layout(CifarLabels::Fine);
  const auto& coarse = cifar100_layout(CifarLabels::Coarse);
  CHECK(fine.default_names.size() == 100);
  CHECK(coarse.default_names.size() == 20);
  // The folder, its parent and the archive (found by its official name) read alike.
  for (const fs::path& source : {dir, tmp.path, tmp.path / "a"}) {
    INFO(source.string());
    const Splits f = read_cifar(source, fine);
    check_cifar100_split(f.train, 0, 12, true);
    check_cifar100_split(f.test, 200, 5, true);
    CHECK(f.train.normalization.mean == std::vector<double>{0.5071, 0.4865, 0.4409});
    const Splits c = read_cifar(source, coarse);
    check_cifar100_split(c.train, 0, 12, false);
    check_cifar100_split(c.test, 200, 5, false);
  }
  check_cifar100_split(read_cifar(dir, fine, Split::Train, 7), 0, 7, true);
  // Without the name files, the official names.
  fs::remove(dir / "fine_label_names.txt");
  CHECK(read_cifar(dir, fine, Split::Test).class_names[1] == "aquarium_fish");
  // Through --dataset's loader, as `vit train --dataset cifar100` reads it.
  DatasetOptions o;
  o.dataset = "cifar100";
  o.data = (tmp.path / "a").string();
  o.cifar100_labels = "coarse";
  const Splits s = load_datasets(o);
  check_cifar100_split(s.train, 0, 12, false);
  REQUIRE_FALSE(s.notes.empty());
  CHECK_THAT(s.notes[0], Contains("CIFAR-100") && Contains("12 train / 5 test images"));
}

TEST_CASE("malformed CIFAR-100 data is rejected naming the file and the label",
          "[data][cifar100]") {
  TempDir tmp;
  const fs::path dir = tmp.path / "cifar-100-binary";
  for (const auto& [name, bytes] : cifar100_files()) write_file(dir / name, bytes);
  const auto& fine = cifar100_layout(CifarLabels::Fine);
  SECTION("a fine label above 99") {
    auto bytes = make_cifar100_records(0, 4);
    bytes[3 * 3074 + 1] = 100;
    write_file(dir / "train.bin", bytes);
    CHECK_THROWS_WITH(read_cifar(dir, fine, Split::Train),
                      Contains("[cifar100]") && Contains("train.bin: record 3 has fine label 100, "
                                                         "expected 0..99"));
  }
  SECTION("a coarse label above 19, even when the fine labels are read") {
    auto bytes = make_cifar100_records(0, 4);
    bytes[2 * 3074] = 20;
    write_file(dir / "test.bin", bytes);
    CHECK_THROWS_WITH(read_cifar(dir, fine, Split::Test),
                      Contains("record 2 has coarse label 20, expected 0..19"));
  }
  SECTION("a CIFAR-10-sized record") {
    write_file(dir / "test.bin", make_records(0, 2));
    CHECK_THROWS_WITH(read_cifar(dir, fine, Split::Test),
                      Contains("6146 bytes, which is not a multiple of the 3074-byte record"));
  }
  SECTION("CIFAR-10 is not taken for CIFAR-100") {
    write_folder(tmp.path / "c10" / "cifar-10-batches-bin");
    CHECK_THROWS_WITH(read_cifar(tmp.path / "c10", fine),
                      Contains("holds neither the CIFAR-100 .bin files, a cifar-100-binary/ "
                               "folder, nor cifar-100-binary.tar.gz"));
    LocateOptions lo;
    lo.explicit_path = tmp.path / "c10";
    CHECK_THROWS_WITH(locate_cifar(lo, fine), Contains("--data") && Contains("no CIFAR-100 there"));
  }
}

// ---------------------------------------------------------------- locating

TEST_CASE("the data is located in the documented order, and all places are reported", "[data]") {
  TempDir tmp;
  LocateOptions o;
  o.source_dir = tmp.path / "repo";
  o.cwd = tmp.path / "elsewhere" / "cwd";
  o.allow_download = false;
  fs::create_directories(o.source_dir);
  fs::create_directories(o.cwd);

  CHECK_THROWS_WITH(locate_cifar10(o), Contains("looked in") &&
                                           Contains((o.source_dir / "data").string()) &&
                                           Contains((o.cwd / "data").string()) &&
                                           Contains("shared") && Contains("download: disabled"));

  write_tar_gz(tmp.path / "elsewhere" / "shared" / "data" / "cifar-10-binary.tar.gz",
               synthetic_files());
  DataLocation found = locate_cifar10(o);
  CHECK(found.how == "shared archive next to the working directory");
  CHECK(found.path.filename() == "cifar-10-binary.tar.gz");

  write_tar_gz(tmp.path / "shared" / "data" / "cifar-10-binary.tar.gz", synthetic_files());
  CHECK(locate_cifar10(o).how == "shared archive next to the repository");

  write_folder(o.cwd / "data" / "cifar-10-batches-bin");
  CHECK(locate_cifar10(o).how == "./data");

  write_folder(o.source_dir / "data" / "cifar-10-batches-bin");
  found = locate_cifar10(o);
  CHECK(found.how == "repository data/");
  CHECK(found.path == o.source_dir / "data" / "cifar-10-batches-bin");

  // A worktree two levels below the shared folder (e.g. /work/wt/<name>) still finds it.
  LocateOptions nested = o;
  nested.source_dir = tmp.path / "wt" / "name";
  nested.cwd = nested.source_dir;
  fs::create_directories(nested.source_dir);
  CHECK(locate_cifar10(nested).how == "shared archive 2 levels above the repository");

  o.env_dir = tmp.path / "env";
  CHECK_THROWS_WITH(locate_cifar10(o), Contains("$CIFAR10_DIR") && Contains("env"));
  write_folder(*o.env_dir);
  CHECK(locate_cifar10(o).how == "$CIFAR10_DIR");

  o.explicit_path = tmp.path / "nowhere";
  CHECK_THROWS_WITH(locate_cifar10(o), Contains("--data") && Contains("nowhere"));
  o.explicit_path = tmp.path / "shared" / "data";
  found = locate_cifar10(o);
  CHECK(found.how == "--data");
  check_split(read_cifar10(found.path, Split::Test), 100, 6);
}

TEST_CASE("the repository searched by default is the one the program sets", "[data]") {
  // A program built on the library searches no repository until it names one (vit names the
  // checkout it was built from); the data arg and the cwd are filled either way.
  CHECK(default_locate_options(std::nullopt).source_dir.empty());
  set_repository_dir("/some/checkout");
  const LocateOptions o = default_locate_options(fs::path("x"));
  set_repository_dir({});
  CHECK(o.source_dir == "/some/checkout");
  CHECK(o.explicit_path == fs::path("x"));
  CHECK(o.cwd == fs::current_path());
}

TEST_CASE("the download script is the last resort and its failure is reported", "[data]") {
  TempDir tmp;
  LocateOptions o;
  o.source_dir = tmp.path / "repo";
  o.cwd = o.source_dir;
  fs::create_directories(o.source_dir);
  write_folder(tmp.path / "payload");

  // A stand-in for scripts/get-cifar10.sh that copies the synthetic files to its argument.
  o.download_script = tmp.path / "fake-get.sh";
  {
    std::ofstream s(o.download_script);
    s << "mkdir -p \"$1\" && cp -r '" << (tmp.path / "payload").string() << "' \"$1/"
      << "cifar-10-batches-bin\"\n";
  }
  const DataLocation found = locate_cifar10(o);
  CHECK_THAT(found.how, Contains("downloaded by") && Contains("fake-get.sh"));
  check_split(read_cifar10(found.path, Split::Train), 0, 20);

  fs::remove_all(o.source_dir / "data");
  {
    std::ofstream s(o.download_script);
    s << "exit 3\n";
  }
  CHECK_THROWS_WITH(locate_cifar10(o), Contains("looked in") && Contains("failed (exit code 3)"));
}

// ---------------------------------------------------------------- deterministic image ops

namespace {

// A 1-channel image from rows of values.
Image gray(std::vector<std::vector<int>> rows) {
  Image im(1, static_cast<int>(rows.size()), static_cast<int>(rows[0].size()));
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) im.at(0, y, x) = static_cast<std::uint8_t>(rows[y][x]);
  return im;
}

// FNV-1a of the pixels, so that sets of images compare cheaply.
std::uint64_t fingerprint(const Image& im) {
  std::uint64_t h = 1469598103934665603ULL;
  for (auto v : im.pixels) h = (h ^ v) * 1099511628211ULL;
  return h;
}

Image random_image(int c, int h, int w, std::uint64_t seed) {
  Generator g(seed);
  Image im(c, h, w);
  for (auto& v : im.pixels) v = static_cast<std::uint8_t>(g.randint(256));
  return im;
}

}  // namespace

TEST_CASE("flip, crop and translate move known pixels to known places", "[data]") {
  const Image img = gray({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}});
  CHECK(hflip(img) == gray({{3, 2, 1}, {6, 5, 4}, {9, 8, 7}}));
  CHECK(crop(img, 1, 1, 1) == img);
  CHECK(crop(img, 0, 0, 1) == gray({{0, 0, 0}, {0, 1, 2}, {0, 4, 5}}));
  CHECK(crop(img, 2, 1, 1) == gray({{2, 3, 0}, {5, 6, 0}, {8, 9, 0}}));
  CHECK(crop(img, 0, 2, 1) == gray({{0, 4, 5}, {0, 7, 8}, {0, 0, 0}}));
  CHECK_THROWS_WITH(crop(img, 3, 0, 1), Contains("[crop] offset (3, 0) outside [0, 2]"));
  CHECK(translate(img, 1, 0) == gray({{0, 1, 2}, {0, 4, 5}, {0, 7, 8}}));
  CHECK(translate(img, 0, -1, 9) == gray({{4, 5, 6}, {7, 8, 9}, {9, 9, 9}}));

  // The random crop takes one of the (2p+1)^2 windows, the same one for the same seed.
  const Image big = random_image(3, 8, 8, 1);
  std::set<std::uint64_t> seen;
  for (std::uint64_t s = 0; s < 200; ++s) {
    Generator g1(s), g2(s);
    const Image a = random_crop(big, 2, g1);
    CHECK(a == random_crop(big, 2, g2));
    seen.insert(fingerprint(a));
  }
  std::set<std::uint64_t> all;
  for (int dy = 0; dy <= 4; ++dy)
    for (int dx = 0; dx <= 4; ++dx) all.insert(fingerprint(crop(big, dx, dy, 2)));
  CHECK(seen == all);
  int flips = 0;
  Generator g(5);
  for (int i = 0; i < 1000; ++i) flips += random_hflip(big, g) == hflip(big) ? 1 : 0;
  CHECK(flips > 440);
  CHECK(flips < 560);
}

TEST_CASE("rotate and shear sample the nearest source pixel with fill 0", "[data]") {
  const Image img = gray({{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}, {13, 14, 15, 16}});
  // Counter-clockwise by 90 degrees: the top-right corner comes to the top-left.
  CHECK(rotate(img, 90) == gray({{4, 8, 12, 16}, {3, 7, 11, 15}, {2, 6, 10, 14}, {1, 5, 9, 13}}));
  CHECK(rotate(img, -90) == rotate(rotate(img, 90), 180));
  CHECK(rotate(img, 0) == img);
  CHECK(rotate(img, 180) == gray({{16, 15, 14, 13}, {12, 11, 10, 9}, {8, 7, 6, 5}, {4, 3, 2, 1}}));
  // 45 degrees on a 3x3, worked by hand: output (x, y) samples
  // (cos*dx - sin*dy + 1, sin*dx + cos*dy + 1) with (dx, dy) = (x - 1, y - 1), rounded.
  CHECK(rotate(gray({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}), 45) ==
        gray({{2, 3, 6}, {1, 5, 9}, {4, 7, 8}}));
  // On a 4x4 the corners of the output sample outside the input and get the fill.
  const Image r45 = rotate(img, 45);
  CHECK(r45.at(0, 0, 0) == 0);
  CHECK(r45.at(0, 3, 3) == 0);
  CHECK(rotate(img, 45, 77).at(0, 0, 3) == 77);
  // Row y is sampled at x + m*(y + 0.5): with m = 0.4 rows shift by round(0.2), round(0.6),
  // round(1.0), round(1.4) = 0, 1, 1, 1 pixels.
  CHECK(shear_x(img, 0.4) == gray({{1, 2, 3, 4}, {6, 7, 8, 0}, {10, 11, 12, 0}, {14, 15, 16, 0}}));
  CHECK(shear_x(img, -0.4) == gray({{1, 2, 3, 4}, {0, 5, 6, 7}, {0, 9, 10, 11}, {0, 13, 14, 15}}));
  CHECK(shear_y(img, 0.4) == gray({{1, 6, 7, 8}, {5, 10, 11, 12}, {9, 14, 15, 16}, {13, 0, 0, 0}}));
}

TEST_CASE("photometric ops give torchvision's uint8 results on known pixels", "[data]") {
  CHECK(posterize(gray({{183, 255, 63}}), 2) == gray({{128, 192, 0}}));
  CHECK(posterize(gray({{183, 7}}), 8) == gray({{183, 7}}));
  CHECK_THROWS_WITH(posterize(gray({{1}}), 9), Contains("[posterize]"));
  CHECK(solarize(gray({{127, 128, 200, 0}}), 128) == gray({{127, 127, 55, 0}}));
  CHECK(solarize(gray({{255, 254}}), 255.0) == gray({{0, 254}}));
  CHECK(invert(gray({{0, 100, 255}})) == gray({{255, 155, 0}}));

  // Per channel: (v - min) * 255 / (max - min), truncated; a flat channel is left alone.
  Image two(2, 1, 3);
  two.pixels = {50, 100, 150, 7, 7, 7};
  Image two_ac(2, 1, 3);
  two_ac.pixels = {0, 127, 255, 7, 7, 7};
  CHECK(autocontrast(two) == two_ac);

  // 1024 pixels: 512 of 10, 256 of 20, 256 of 30. step = (1024 - 256) / 255 = 3 and
  // lut[v] = (count below v + 1) / 3: 10 -> 0, 20 -> 513/3 = 171, 30 -> 769/3 = 256 -> 255.
  Image eq(1, 32, 32);
  for (int i = 0; i < 1024; ++i) eq.pixels[i] = i < 512 ? 10 : i < 768 ? 20 : 30;
  const Image eq_out = equalize(eq);
  CHECK(eq_out.pixels[0] == 0);
  CHECK(eq_out.pixels[600] == 171);
  CHECK(eq_out.pixels[1000] == 255);
  CHECK(equalize(gray({{5, 5}, {9, 9}})) == gray({{5, 5}, {9, 9}}));  // step 0: unchanged

  CHECK(adjust_brightness(gray({{201, 200, 0}}), 0.5) == gray({{100, 100, 0}}));
  CHECK(adjust_brightness(gray({{200, 100}}), 2.0) == gray({{255, 200}}));

  // Colour (100, 150, 200): luma 0.2989*100 + 0.587*150 + 0.114*200 = 140.74 -> 140.
  Image rgb(3, 1, 2);
  rgb.pixels = {100, 100, 150, 150, 200, 200};
  Image g140(3, 1, 2, 140);
  CHECK(adjust_saturation(rgb, 0.0) == g140);
  CHECK(adjust_saturation(rgb, 1.0) == rgb);
  CHECK(adjust_contrast(rgb, 0.0) == g140);
  Image c2(3, 1, 2);
  c2.pixels = {60, 60, 160, 160, 255, 255};  // 2v - 140, clamped
  CHECK(adjust_contrast(rgb, 2.0) == c2);
  Image s2(3, 1, 2);
  s2.pixels = {60, 60, 160, 160, 255, 255};  // 2v - gray, same as contrast here
  CHECK(adjust_saturation(rgb, 2.0) == s2);

  // Smoothing kernel [[1,1,1],[1,5,1],[1,1,1]]/13 on the centre: 5*130/13 = 50; border kept.
  const Image spot = gray({{0, 0, 0}, {0, 130, 0}, {0, 0, 0}});
  CHECK(adjust_sharpness(spot, 0.0) == gray({{0, 0, 0}, {0, 50, 0}, {0, 0, 0}}));
  CHECK(adjust_sharpness(spot, 2.0) == gray({{0, 0, 0}, {0, 210, 0}, {0, 0, 0}}));
  CHECK(adjust_sharpness(spot, 1.0) == spot);

  const std::uint8_t fill[1] = {9};
  const Image ones(1, 4, 4, 1);
  CHECK(cutout(ones, 0, 0, 2, fill) ==
        gray({{9, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}}));
  CHECK(cutout(ones, 2, 2, 2, fill) ==
        gray({{1, 1, 1, 1}, {1, 9, 9, 1}, {1, 9, 9, 1}, {1, 1, 1, 1}}));
  Generator gc(3);
  const Image cut = random_cutout(Image(3, 32, 32, 200), 8, CutoutFill::Mean, gc);
  const auto n125 = std::count(cut.pixels.begin(), cut.pixels.begin() + 1024, 125);
  CHECK(n125 > 0);
  CHECK(n125 <= 64);
  CHECK(std::count(cut.pixels.begin() + 2048, cut.pixels.end(), 114) == n125);
}

// ---------------------------------------------------------------- RandAugment / AutoAugment

TEST_CASE("op magnitudes follow torchvision's augmentation space", "[data]") {
  CHECK(op_magnitude(AugOp::Rotate, 30, 31, 32, 32) == Approx(30.0));
  CHECK(op_magnitude(AugOp::Rotate, 9, 31, 32, 32) == Approx(9.0));
  CHECK(op_magnitude(AugOp::ShearX, 9, 31, 32, 32) == Approx(0.09));
  CHECK(op_magnitude(AugOp::TranslateX, 30, 31, 32, 32) == Approx(150.0 / 331.0 * 32));
  CHECK(op_magnitude(AugOp::Brightness, 9, 31, 32, 32) == Approx(0.27));
  CHECK(op_magnitude(AugOp::Solarize, 0, 31, 32, 32) == Approx(255.0));
  CHECK(op_magnitude(AugOp::Solarize, 30, 31, 32, 32) == Approx(0.0));
  CHECK(op_magnitude(AugOp::Posterize, 9, 31, 32, 32) == 7.0);  // 8 - round(9 / 7.5)
  CHECK(op_magnitude(AugOp::Posterize, 30, 31, 32, 32) == 4.0);
  std::vector<double> bits;
  for (int b = 0; b < 10; ++b) bits.push_back(op_magnitude(AugOp::Posterize, b, 10, 32, 32));
  CHECK(bits == std::vector<double>{8, 8, 7, 7, 6, 6, 5, 5, 4, 4});
  CHECK(op_magnitude(AugOp::Equalize, 5, 10, 32, 32) == 0.0);
  CHECK(op_is_signed(AugOp::Rotate));
  CHECK_FALSE(op_is_signed(AugOp::Solarize));
  CHECK(randaugment_ops().size() == 14);

  const auto& p = autoaugment_cifar10_policy();
  CHECK(p[0][0].op == AugOp::Invert);
  CHECK(p[0][1].op == AugOp::Contrast);
  CHECK(p[0][1].probability == 0.2);
  CHECK(p[0][1].magnitude_bin == 6);
  CHECK(p[22][1].op == AugOp::Solarize);
  CHECK(p[22][1].probability == 0.8);
  CHECK(p[24][0].op == AugOp::TranslateY);
  CHECK(p[24][1].op == AugOp::AutoContrast);

  const Image img = random_image(3, 32, 32, 2);
  CHECK(apply_op(img, AugOp::Rotate, 90) == rotate(img, 90));
  CHECK(apply_op(img, AugOp::TranslateX, -4.9) == translate(img, -4, 0));
  CHECK(apply_op(img, AugOp::Posterize, 4) == posterize(img, 4));
  CHECK(apply_op(img, AugOp::Brightness, -0.5) == adjust_brightness(img, 0.5));
}

TEST_CASE("RandAugment and AutoAugment are reproducible from the generator", "[data]") {
  const Image img = random_image(3, 32, 32, 4);
  int changed_ra = 0, changed_aa = 0;
  std::set<std::uint64_t> distinct;
  for (std::uint64_t s = 0; s < 30; ++s) {
    Generator a(s), b(s);
    const Image ra = rand_augment(img, 2, 9, a);
    CHECK(ra == rand_augment(img, 2, 9, b));
    CHECK(a.state() == b.state());
    changed_ra += ra != img;
    distinct.insert(fingerprint(ra));
    const Image aa = auto_augment_cifar10(img, a);
    CHECK(aa == auto_augment_cifar10(img, b));
    changed_aa += aa != img;
  }
  CHECK(changed_ra > 20);  // only Identity twice leaves the image alone
  CHECK(distinct.size() > 20);
  CHECK(changed_aa > 5);
  Generator g(0);
  CHECK_THROWS_WITH(rand_augment(img, 2, 31, g), Contains("[randaugment] magnitude 31"));
}

// ---------------------------------------------------------------- normalisation and mixing

TEST_CASE("normalisation scales to [0, 1] and applies the CIFAR-10 mean and std", "[data]") {
  Image img(3, 1, 2);
  img.pixels = {0, 255, 0, 255, 128, 128};
  std::vector<float> out(6);
  normalize_into(img, out.data());
  CHECK(out[0] == Approx(-0.4914 / 0.2470).epsilon(1e-6));
  CHECK(out[1] == Approx((1 - 0.4914) / 0.2470).epsilon(1e-6));
  CHECK(out[3] == Approx((1 - 0.4822) / 0.2435).epsilon(1e-6));
  CHECK(out[4] == Approx((128 / 255.0 - 0.4465) / 0.2616).epsilon(1e-6));
}

TEST_CASE("Gamma and Beta draws have the right moments", "[data]") {
  Generator g(11);
  const int n = 20000;
  auto moments = [&](auto draw) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      const double x = draw();
      s += x;
      s2 += x * x;
    }
    const double mean = s / n;
    return std::pair{mean, s2 / n - mean * mean};
  };
  auto [gm, gv] = moments([&] { return sample_gamma(0.4, g); });
  CHECK(gm == Approx(0.4).margin(0.02));
  CHECK(gv == Approx(0.4).margin(0.04));
  auto [bm, bv] = moments([&] { return sample_beta(2.0, 5.0, g); });
  CHECK(bm == Approx(2.0 / 7.0).margin(0.005));
  CHECK(bv == Approx(10.0 / (49.0 * 8.0)).margin(0.002));
  auto [sm, sv] = moments([&] { return sample_beta(0.2, 0.2, g); });
  CHECK(sm == Approx(0.5).margin(0.01));
  CHECK(sv == Approx(0.04 / (0.16 * 1.4)).margin(0.01));
}

TEST_CASE("Mixup and CutMix mix images with the reversed batch and targets match lambda",
          "[data]") {
  const std::int64_t B = 4;
  const std::vector<std::int64_t> labels = {0, 3, 3, 9};
  // Image i holds the value i everywhere, so every output pixel reveals its source.
  auto batch = [&] {
    std::vector<float> v(static_cast<std::size_t>(B * 3 * 8 * 8));
    for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<float>(k / (3 * 8 * 8));
    return from_vector(v, {B, 3, 8, 8});
  };
  const auto y = smooth_one_hot(labels, 10, 0.1);
  CHECK(y[0] == Approx(0.91));
  CHECK(y[1] == Approx(0.01));

  SECTION("mixup") {
    Tensor x = batch();
    MixParams mix;
    mix.lambda = 0.7;
    const Tensor soft = apply_mix(x, labels, 10, 0.1, mix);
    CHECK(x.at({1, 2, 5, 5}) == Approx(0.7 * 1 + 0.3 * 2));
    CHECK(x.at({0, 0, 0, 0}) == Approx(0.7 * 0 + 0.3 * 3));
    CHECK(soft.shape() == Shape{B, 10});
    CHECK(soft.at({0, 0}) == Approx(0.7 * 0.91 + 0.3 * 0.01));
    CHECK(soft.at({0, 9}) == Approx(0.7 * 0.01 + 0.3 * 0.91));
    CHECK(soft.at({1, 3}) == Approx(0.91));  // both partners are class 3
    for (std::int64_t i = 0; i < B; ++i) {
      double s = 0;
      for (std::int64_t c = 0; c < 10; ++c) s += soft.at({i, c});
      CHECK(s == Approx(1.0));
    }
  }
  SECTION("cutmix") {
    MixConfig config;
    config.cutmix_alpha = 1.0;
    Generator g(8);
    int boxes = 0;
    for (int trial = 0; trial < 20; ++trial) {
      const MixParams mix = sample_mix(config, 8, 8, g);
      REQUIRE(mix.cutmix);
      const double area = (mix.y1 - mix.y0) * (mix.x1 - mix.x0);
      CHECK(mix.lambda == Approx(1.0 - area / 64.0));
      boxes += area > 0;
      Tensor x = batch();
      const Tensor soft = apply_mix(x, labels, 10, 0.0, mix);
      for (std::int64_t yy = 0; yy < 8; ++yy)
        for (std::int64_t xx = 0; xx < 8; ++xx) {
          const bool in = yy >= mix.y0 && yy < mix.y1 && xx >= mix.x0 && xx < mix.x1;
          CHECK(x.at({0, 1, yy, xx}) == (in ? 3.0 : 0.0));
        }
      CHECK(soft.at({0, 0}) == Approx(mix.lambda));
      CHECK(soft.at({0, 9}) == Approx(1.0 - mix.lambda));
    }
    CHECK(boxes > 10);
  }
  SECTION("both on: the switch picks each about half the time") {
    MixConfig config;
    config.mixup_alpha = 0.8;
    config.cutmix_alpha = 1.0;
    Generator g(9);
    int cutmix = 0;
    for (int i = 0; i < 400; ++i) cutmix += sample_mix(config, 32, 32, g).cutmix;
    CHECK(cutmix > 160);
    CHECK(cutmix < 240);
  }
}

// ---------------------------------------------------------------- loader

namespace {

Dataset random_dataset(std::int64_t n, std::uint64_t seed) {
  Generator g(seed);
  Dataset d;
  d.images.resize(static_cast<std::size_t>(n * kImageBytes));
  for (auto& v : d.images) v = static_cast<std::uint8_t>(g.randint(256));
  for (std::int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<std::uint8_t>(i % 10));
  d.class_names = default_class_names();
  return d;
}

LoaderConfig heavy_config(int workers) {
  LoaderConfig c;
  c.batch_size = 8;
  c.seed = 1234;
  c.num_workers = workers;
  c.prefetch = 2;
  c.augment.augment = AugmentPolicy::RandAugment;
  c.augment.cutout_size = 8;
  c.augment.mixup_alpha = 0.8;
  c.augment.cutmix_alpha = 1.0;
  c.augment.label_smoothing = 0.1;
  return c;
}

std::vector<Batch> run_epoch(Loader& loader, std::int64_t epoch, std::int64_t first = 0) {
  loader.start_epoch(epoch, first);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

void check_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].index == b[i].index);
    CHECK(a[i].indices == b[i].indices);
    CHECK(a[i].labels == b[i].labels);
    CHECK(a[i].images.to_vector() == b[i].images.to_vector());
    REQUIRE(a[i].soft_targets.defined() == b[i].soft_targets.defined());
    if (a[i].soft_targets.defined())
      CHECK(a[i].soft_targets.to_vector() == b[i].soft_targets.to_vector());
  }
}

}  // namespace

TEST_CASE("loader batches do not depend on the number of worker threads", "[data]") {
  const Dataset d = random_dataset(53, 1);
  Loader l0(d, heavy_config(0)), l1(d, heavy_config(1)), l2(d, heavy_config(2));
  CHECK(l1.num_batches() == 7);
  const auto a = run_epoch(l0, 3), b = run_epoch(l1, 3), c = run_epoch(l2, 3);
  check_same(a, b);
  check_same(a, c);
  REQUIRE(a.size() == 7);
  CHECK(a.back().labels.size() == 5);  // 53 = 6 * 8 + 5, drop_last off
  CHECK(a[0].images.shape() == Shape{8, 3, 32, 32});
  CHECK(a[0].soft_targets.shape() == Shape{8, 10});

  // Every record once per epoch; another epoch has another order and other augmentations.
  std::vector<std::int64_t> seen;
  for (const auto& batch : a) seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
  std::sort(seen.begin(), seen.end());
  std::vector<std::int64_t> all(53);
  std::iota(all.begin(), all.end(), 0);
  CHECK(seen == all);
  const auto next_epoch = run_epoch(l2, 4);
  CHECK(next_epoch[0].indices != a[0].indices);
  const auto again = run_epoch(l1, 3);  // the same epoch replays exactly
  check_same(a, again);
}

TEST_CASE("loader resumes an epoch at batch k with the same batches", "[data]") {
  const Dataset d = random_dataset(40, 2);
  LoaderConfig config = heavy_config(2);
  config.augment.augment = AugmentPolicy::AutoAugment;
  config.drop_last = true;
  config.batch_size = 6;  // 40 = 6 * 6 + 4: the last 4 are dropped
  Loader full(d, config), resumed(d, config);
  const auto a = run_epoch(full, 7);
  REQUIRE(a.size() == 6);
  const auto b = run_epoch(resumed, 7, 4);
  REQUIRE(b.size() == 2);
  check_same({a.begin() + 4, a.end()}, b);
  CHECK(run_epoch(resumed, 7, 6).empty());
  CHECK_THROWS_WITH(resumed.start_epoch(7, 7), Contains("cannot start epoch 7 at batch 7 of 6"));
}

TEST_CASE("loader without augmentation returns the normalised records in order", "[data]") {
  const Dataset d = random_dataset(10, 3);
  LoaderConfig config;
  config.batch_size = 4;
  config.shuffle = false;
  config.augment.augment = AugmentPolicy::None;
  Loader loader(d, config);
  const auto batches = run_epoch(loader, 0);
  REQUIRE(batches.size() == 3);
  CHECK_FALSE(batches[0].soft_targets.defined());
  CHECK(batches[2].indices == std::vector<std::int64_t>{8, 9});
  std::vector<float> expect(kImageBytes);
  normalize_into(Image::from_chw(d.image(9), 3, 32, 32), expect.data());
  const auto got = batches[2].images.to_vector();
  CHECK(std::vector<float>(got.begin() + kImageBytes, got.end()) == expect);
  CHECK(batches[1].labels == std::vector<std::int64_t>{4, 5, 6, 7});
}

TEST_CASE("loader records the time the consumer waits for each batch", "[data]") {
  const Dataset d = random_dataset(64, 4);
  Loader loader(d, heavy_config(1));
  const auto batches = run_epoch(loader, 0);
  REQUIRE(loader.epoch_wait_seconds().size() == batches.size());
  double sum = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    CHECK(batches[i].wait_seconds >= 0.0);
    CHECK(loader.epoch_wait_seconds()[i] == batches[i].wait_seconds);
    sum += batches[i].wait_seconds;
  }
  // The first batch cannot be ready before the worker has made it, so the wait is real.
  CHECK(batches[0].wait_seconds > 0.0);
  CHECK(loader.total_wait_seconds() == Approx(sum));
  run_epoch(loader, 1);
  CHECK(loader.total_wait_seconds() > sum);
}

TEST_CASE("loader stops cleanly when the consumer stops early", "[data]") {
  const Dataset d = random_dataset(400, 5);
  {
    Loader loader(d, heavy_config(2));
    loader.start_epoch(0);
    REQUIRE(loader.next().has_value());
  }  // destroyed with workers blocked on a full queue
  {
    Loader loader(d, heavy_config(2));
    loader.start_epoch(0);
  }                                       // destroyed before any batch was taken
  { Loader loader(d, heavy_config(2)); }  // never started
  Loader loader(d, heavy_config(2));
  loader.start_epoch(0);
  loader.next();
  loader.start_epoch(1, 2);  // abandoning an epoch for another
  const auto b = loader.next();
  REQUIRE(b.has_value());
  CHECK(b->index == 2);
}

TEST_CASE("a worker's exception reaches the consumer at the failing batch", "[data]") {
  // A set read from its files, as an image folder over the memory budget: the workers decode
  // the images, and file 20 is no image at all.
  TempDir tmp;
  Dataset d;
  d.class_names = default_class_names();
  const std::vector<std::uint8_t> hwc(8 * 8 * 3, 77);
  for (int i = 0; i < 40; ++i) {
    const fs::path f = tmp.path / fmt::format("{:02}.png", i);
    if (i == 20)
      std::ofstream(f) << "not an image\n";
    else
      REQUIRE(stbi_write_png(f.c_str(), 8, 8, 3, hwc.data(), 8 * 3) != 0);
    d.files.push_back(f);
    d.labels.push_back(i % 10);
  }
  REQUIRE_FALSE(d.in_memory());
  LoaderConfig config = heavy_config(2);
  config.shuffle = false;
  Loader loader(d, config);
  loader.start_epoch(0);
  CHECK(loader.next()->index == 0);
  CHECK(loader.next()->index == 1);
  CHECK_THROWS_WITH(loader.next(), Contains("cannot decode") && Contains("20.png"));
  CHECK_THROWS_WITH(loader.next(), Contains("20.png"));  // the epoch does not go on
}

TEST_CASE("the loader rejects labels outside the data set's classes", "[data]") {
  Dataset d = random_dataset(40, 6);
  d.labels[20] = 12;
  CHECK_THROWS_WITH(Loader(d, heavy_config(1)),
                    Contains("image 20 has label 12, outside the 10 classes"));
}
