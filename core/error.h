// Errors: every failure is a pw::Error whose message names the op and the shapes.
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace pw {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws pw::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace pw

// PW_CHECK(cond, "[op] message {}", args...) throws pw::Error when cond is false.
#define PW_CHECK(cond, ...)    \
  do {                         \
    if (!(cond)) {             \
      ::pw::fail(__VA_ARGS__); \
    }                          \
  } while (0)
