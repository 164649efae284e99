// How the inspection subcommands run: CLI11 calls a subcommand's callback inside App::parse,
// where a pw::Error would escape main's handler (which maps it to "error: ..." and exit 1).
// So each callback only records its work, and main runs it after parsing, inside that handler.
#pragma once
#include <functional>

namespace pw::app {

// Records the work of the subcommand being parsed (called from its CLI11 callback).
void set_chosen_command(std::function<void()> run);
// Runs the recorded work, if any, and forgets it; false when no such subcommand was given.
bool run_chosen_command();

}  // namespace pw::app
