// `vit allreduce`: the gradient allreduce of a preset alone, timed, under mpirun (the bytes every
// step moves and how long it takes; docs/distributed.md builds its model from these figures).
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pw::app {

struct AllreduceOptions {
  std::string preset = "lite";
  std::vector<std::string> model;  // --model key=value overrides
  std::int64_t steps = 20;
  std::int64_t warmup = 3;
  double bucket_mb = 25;  // dist::kDefaultBucketBytes
  bool blocking = false;  // MPI's blocking MPI_Allreduce instead of the timed, polled one
  bool json = false;
};

// Times the preset's gradient allreduce over the job's ranks; rank 0 prints and every rank
// returns the figures.
nlohmann::ordered_json run_allreduce(const AllreduceOptions& o);

// Declares `vit allreduce` and its flags.
void add_allreduce_command(CLI::App& app);

}  // namespace pw::app
