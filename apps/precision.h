// --precision {auto,fp32,bf16}: the arithmetic of the GEMMs for train, eval, predict and bench.
// bf16 runs the model under an AutocastGuard (core/autocast.h): bfloat16 GEMM operands with
// float32 accumulation, float32 everywhere else.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace pw::app {

struct PrecisionChoice {
  std::string precision;  // "fp32" or "bf16"
  std::string reason;     // why, for the run's report
  bool bf16() const { return precision == "bf16"; }
};

// Resolves the flag's value. auto picks bf16 where the CPU has native bf16 units (AVX512_BF16
// or AMX-BF16, as oneDNN detects them) and fp32 elsewhere, where bf16 would be emulated and
// slower than float32.
PrecisionChoice resolve_precision(const std::string& flag);
// "precision: bf16 (auto: ...)": the line each command prints.
std::string describe(const PrecisionChoice& p);
// Declares --precision on a command, bound to `value`.
CLI::Option* add_precision_flag(CLI::App& app, std::string& value);

}  // namespace pw::app
