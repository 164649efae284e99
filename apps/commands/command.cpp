#include "apps/commands/command.h"

#include <utility>

namespace pw::app {
namespace {
std::function<int()>& chosen() {
  static std::function<int()> run;
  return run;
}
}  // namespace

void set_chosen_command(std::function<int()> run) {
  chosen() = std::move(run);
}

std::optional<int> run_chosen_command() {
  auto run = std::exchange(chosen(), nullptr);
  if (!run) return std::nullopt;
  return run();
}

void when_chosen(CLI::App& sub, std::function<int()> work) {
  sub.callback([work = std::move(work)] { set_chosen_command(work); });
}

}  // namespace pw::app
