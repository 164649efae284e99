// `vit bench`: training-step and inference throughput of a preset on random data, against the
// OpenBLAS sgemm rate and the bf16 GEMM engine's rate, both measured in the same process. Under
// `mpirun -np N` it measures the data-parallel step: each rank runs its share of the batch and
// the gradients are summed over the ranks (dist/), as in `vit train`.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pw::app {

struct BenchOptions {
  std::string preset = "lite";
  std::vector<std::string> model;  // --model key=value overrides
  std::int64_t batch_size = 128;
  std::int64_t threads = 0;
  std::int64_t steps = 10;
  std::int64_t warmup = 2;
  std::string precision = "auto";  // apps/precision.h
  bool json = false;
};

// Runs the benchmark, prints a table (or one JSON line) and returns the figures.
nlohmann::ordered_json run_bench(const BenchOptions& o);

// Declares `vit bench` and its flags.
void add_bench_command(CLI::App& app);

// GFLOP/s of cblas_sgemm on an n x n x n problem (best of `reps`).
double sgemm_gflops(std::int64_t n = 1024, int reps = 5);
// GFLOP/s of the bf16 GEMM engine (ops/gemm_bf16.h) on the same problem.
double bf16_gemm_gflops(std::int64_t n = 1024, int reps = 5);

}  // namespace pw::app
