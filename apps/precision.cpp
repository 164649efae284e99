#include "apps/precision.h"

#include <fmt/format.h>

#include "core/error.h"
#include "ops/gemm_bf16.h"

namespace pw::app {

PrecisionChoice resolve_precision(const std::string& flag) {
  const bool native = gemm::cpu_has_native_bf16();
  const std::string isa = gemm::onednn_cpu_isa();
  if (flag == "fp32") return {"fp32", "requested"};
  if (flag == "bf16")
    return {"bf16", native ? fmt::format("requested; native bf16 units, oneDNN ISA {}", isa)
                           : fmt::format("requested; this CPU has no native bf16 units (oneDNN "
                                         "ISA {}), so the bf16 GEMMs are emulated and slower",
                                         isa)};
  PW_CHECK(flag == "auto", "[--precision] expected auto, fp32 or bf16, got '{}'", flag);
  if (native)
    return {"bf16", fmt::format("auto: the CPU has native bf16 units, oneDNN ISA {}", isa)};
  return {"fp32", fmt::format("auto: no native bf16 units on this CPU (oneDNN ISA {})", isa)};
}

std::string describe(const PrecisionChoice& p) {
  return fmt::format("precision: {} ({})", p.precision, p.reason);
}

CLI::Option* add_precision_flag(CLI::App& app, std::string& value) {
  return app
      .add_option("--precision", value,
                  "GEMM arithmetic: bf16 (bfloat16 operands, float32 accumulation, as PyTorch's "
                  "CPU autocast), fp32, or auto (bf16 where the CPU has AVX512_BF16 or AMX)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
}

}  // namespace pw::app
