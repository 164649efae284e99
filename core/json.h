// Integers read from JSON that came from outside (a file, a flag). nlohmann's get<std::int64_t>()
// converts whatever number it holds: 3.7 becomes 3 without a word, and 1e28 (what
// `--model depth=1611...1` parses to) is undefined behaviour. json_int64 takes only an integer
// that fits, and names the field otherwise.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"

namespace pw {

inline std::int64_t json_int64(const nlohmann::json& v, std::string_view what) {
  const bool fits = v.is_number_integer() &&
                    (!v.is_number_unsigned() ||
                     v.get<std::uint64_t>() <=
                         static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  if (!fits) {
    std::string text = v.dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    fail("{}: expected a 64-bit integer, got {}", what, text);
  }
  return v.get<std::int64_t>();
}

}  // namespace pw
