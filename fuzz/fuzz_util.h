// What the libFuzzer targets share: a per-process scratch folder (for the readers that take a
// path), and the rule of every target: a hostile input may end in a pw::Error (or a JSON
// library error, whose message names the problem), never in a crash, a hang, a leak, another
// exception or an allocation above libFuzzer's -malloc_limit_mb.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace pw::fuzz {

// A folder of this process under the temp dir, emptied on first use.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d =
        std::filesystem::temp_directory_path() / ("patchwork-fuzz-" + std::to_string(::getpid()));
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline void write_bytes(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// The input cut at every occurrence of `separator` (seed corpora join files with it).
inline std::vector<std::span<const std::uint8_t>> split(std::span<const std::uint8_t> data,
                                                        std::string_view separator) {
  std::vector<std::span<const std::uint8_t>> parts;
  const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = text.find(separator, start);
    const std::size_t end = at == std::string_view::npos ? text.size() : at;
    parts.push_back(data.subspan(start, end - start));
    if (at == std::string_view::npos) return parts;
    start = at + separator.size();
  }
}

// Runs `body`, accepting the errors a hostile input may end in.
template <typename F>
int expect_errors_only(F&& body) {
  try {
    body();
  } catch (const pw::Error&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}

}  // namespace pw::fuzz
