// Synthetic CIFAR-10 files in the official binary layout, made in a temporary folder, so that
// end-to-end tests never need the real data set.
#pragma once
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/random.h"

namespace pw::testing {

// A fresh empty folder under the system temp dir, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() /
           ("patchwork-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Writes cifar-10-batches-bin/ with `n_train` records spread over the five training files and
// `n_test` test records. Each image is a noisy colour pattern of its class (learnable), and
// with `test_equals_train` the test file repeats the first training images.
inline std::filesystem::path write_synthetic_cifar(const std::filesystem::path& root,
                                                   std::int64_t n_train, std::int64_t n_test,
                                                   std::uint64_t seed = 1,
                                                   bool test_equals_train = false) {
  const auto dir = root / "cifar-10-batches-bin";
  std::filesystem::create_directories(dir);
  Generator gen(seed);
  auto record = [&](std::int64_t i) {
    std::vector<char> r(3073);
    const int label = static_cast<int>(i % 10);
    r[0] = static_cast<char>(label);
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) {
        const int base = ((label >> c) & 1) * 120 + (p / 32 < 3 * label ? 60 : 0);
        r[1 + c * 1024 + p] = static_cast<char>(base + static_cast<int>(gen.randint(60)));
      }
    return r;
  };
  std::vector<std::vector<char>> train;
  for (std::int64_t i = 0; i < n_train; ++i) train.push_back(record(i));
  for (int f = 0; f < 5; ++f) {
    std::ofstream out(dir / ("data_batch_" + std::to_string(f + 1) + ".bin"), std::ios::binary);
    // Batch files hold consecutive records: file f gets records [f*n/5, (f+1)*n/5).
    const std::int64_t lo = n_train * f / 5, hi = n_train * (f + 1) / 5;
    for (std::int64_t i = lo; i < hi; ++i)
      out.write(train[static_cast<std::size_t>(i)].data(), 3073);
  }
  std::ofstream test(dir / "test_batch.bin", std::ios::binary);
  for (std::int64_t i = 0; i < n_test; ++i) {
    const auto r =
        test_equals_train ? train[static_cast<std::size_t>(i % n_train)] : record(n_train + i);
    test.write(r.data(), 3073);
  }
  std::ofstream meta(dir / "batches.meta.txt");
  for (const char* name :
       {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"})
    meta << name << "\n";
  return dir;
}

// One member of a tar archive: its name, bytes and type flag ('0' a file, 'x' a pax header,
// 'L' a GNU long name).
struct TarEntry {
  std::string name;
  std::vector<std::uint8_t> bytes;
  char type = '0';
};

// Recomputes the checksum field of a tar header (after a test has changed the header).
inline void set_tar_checksum(std::array<char, 512>& h) {
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  std::snprintf(h.data() + 148, 8, "%06o", sum);
}

// The 512-byte ustar header of an entry called `name` of `size` bytes and type flag `type`.
inline std::array<char, 512> tar_header(const std::string& name, std::uint64_t size,
                                        char type = '0') {
  std::array<char, 512> h{};
  std::memcpy(h.data(), name.c_str(), std::min<std::size_t>(name.size(), 99));
  std::snprintf(h.data() + 100, 8, "%07o", 0644);
  std::snprintf(h.data() + 108, 8, "%07o", 0);
  std::snprintf(h.data() + 116, 8, "%07o", 0);
  std::snprintf(h.data() + 124, 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(h.data() + 136, 12, "%011o", 0);
  h[156] = type;
  std::memcpy(h.data() + 257, "ustar", 6);
  std::memcpy(h.data() + 263, "00", 2);
  set_tar_checksum(h);
  return h;
}

// Gzips `bytes` into `path` with zlib.
inline void write_gz(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  gzFile f = gzopen(path.string().c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot write " + path.string());
  const int written = gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  if (written != static_cast<int>(bytes.size()))
    throw std::runtime_error("cannot write " + path.string());
}

// The tar bytes of `entries` (each name under `prefix`); `end_marker` false leaves out the two
// zero blocks that end an archive.
inline std::vector<std::uint8_t> tar_bytes(const std::vector<TarEntry>& entries,
                                           const std::string& prefix = "cifar-10-batches-bin/",
                                           bool end_marker = true) {
  std::vector<std::uint8_t> tar;
  for (const auto& [name, bytes, type] : entries) {
    const auto h = tar_header(prefix + name, bytes.size(), type);
    tar.insert(tar.end(), h.begin(), h.end());
    tar.insert(tar.end(), bytes.begin(), bytes.end());
    tar.resize((tar.size() + 511) / 512 * 512, 0);
  }
  if (end_marker) tar.resize(tar.size() + 1024, 0);
  return tar;
}

// A ustar archive of `entries` (each name under `prefix`), gzipped with zlib.
inline void write_tar_gz(const std::filesystem::path& path, const std::vector<TarEntry>& entries,
                         const std::string& prefix = "cifar-10-batches-bin/") {
  write_gz(path, tar_bytes(entries, prefix));
}

// The records of one type ("step", "epoch", "summary") of a run's metrics.jsonl.
inline std::vector<nlohmann::json> records(const std::filesystem::path& run,
                                           const std::string& type) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == type) out.push_back(j);
  }
  return out;
}

}  // namespace pw::testing
