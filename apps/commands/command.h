// How the subcommands of `vit` run: CLI11 calls a subcommand's callback inside App::parse,
// where a pw::Error would escape main's handler (which maps it to "error: ..." and exit 1).
// So each callback only records its work, and main runs it after parsing, inside that handler.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <optional>

namespace pw::app {

// Records the work of the subcommand being parsed (called from its CLI11 callback); the work
// returns the process exit code.
void set_chosen_command(std::function<int()> run);
// Runs the recorded work, if any, and forgets it; its exit code, or nothing when no
// subcommand recorded work.
std::optional<int> run_chosen_command();
// Records `work` as the chosen command when `sub` is parsed.
void when_chosen(CLI::App& sub, std::function<int()> work);

}  // namespace pw::app
