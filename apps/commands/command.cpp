#include "apps/commands/command.h"

#include <utility>

namespace pw::app {
namespace {
std::function<void()>& chosen() {
  static std::function<void()> run;
  return run;
}
}  // namespace

void set_chosen_command(std::function<void()> run) {
  chosen() = std::move(run);
}

bool run_chosen_command() {
  auto run = std::exchange(chosen(), nullptr);
  if (!run) return false;
  run();
  return true;
}

}  // namespace pw::app
