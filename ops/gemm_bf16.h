// The bfloat16 GEMM engine: C = epilogue(alpha A B) with A, B bfloat16 and float32 accumulation,
// on oneDNN's matmul (AMX or AVX512_BF16 kernels where the CPU has them, its own fallbacks where
// it does not, OpenBLAS's sgemm on widened copies where oneDNN has no bf16 matmul at all), beside
// a plain triple-loop reference that defines the contract for the tests.
//
// The epilogue, in this order, per element of C:
//   C = gelu( alpha * sum_k A[m,k] B[k,n]  +  bias[n]  +  C_old[m,n] )
// where the bias term is present when has_bias, C_old (C's value before the call, read as
// stored: float32 or bfloat16) when accumulate, and gelu (the exact erf form) when gelu. alpha
// scales only the product, never the bias or C_old. A bfloat16 C is rounded once, to nearest
// even, from the float32 result.
#pragma once
#include <cstdint>
#include <string>

#include "core/bfloat16.h"

namespace pw::gemm {

// One operand or result matrix as strides in elements: (rows, cols) plus up to two batch dims.
// Transposition is expressed by strides alone (a transposed view has row stride 1).
struct MatrixStrides {
  std::int64_t batch0 = 0, batch1 = 0, row = 0, col = 1;
};

// Shapes, strides and epilogue of one (batched) product. A batch stride of 0 in A or B shares
// that operand across the batch dim (broadcast); C's matrices must not overlap. Each matrix
// needs a unit stride in one of its two dims (row-major or transposed, as BLAS), and the other
// stride at least the extent of that dim; dims of size 1 may carry any stride.
struct GemmDesc {
  std::int64_t batch0 = 1, batch1 = 1;  // batch dims (e.g. B and H of attention); 1 when unused
  std::int64_t M = 0, N = 0, K = 0;
  MatrixStrides a, b, c;    // A is (M, K), B is (K, N), C is (M, N) per batch
  float alpha = 1.0f;       // C = alpha * A B (+ bias) ...
  bool accumulate = false;  // C += ... instead of C = ... (beta 1)
  bool c_bf16 = false;      // C stored as bfloat16 instead of float32
  bool has_bias = false;    // add a float32 bias of length N to every row
  bool gelu = false;        // then apply exact (erf) GELU (post-op)
};

// C = epilogue(alpha * A @ B) with A, B bfloat16 and float32 accumulation; C float32 (or bfloat16
// when desc.c_bf16; then pass the bfloat16 pointer as void*). bias may be null unless has_bias.
// Runs on the OpenMP threads (omp_set_num_threads), one thread below ~1M multiply-adds; the
// primitive is created on the first call with a descriptor and cached. Operands that oneDNN's
// fast kernels cannot read in place (gaps between rows, a padded leading dimension, C not
// row-major) are packed into dense scratch copies around the call.
void gemm_bf16(const GemmDesc& d, const bfloat16* A, const bfloat16* B, void* C,
               const float* bias = nullptr);

// The plain reference: the same contract, triple loop, float32 accumulation in k order, for
// tests.
void gemm_bf16_reference(const GemmDesc& d, const bfloat16* A, const bfloat16* B, void* C,
                         const float* bias = nullptr);

// The fallback for CPUs where oneDNN has no bf16 matmul (oneDNN 2.6 has none below AVX512):
// A and B widened to float32 and multiplied by OpenBLAS's sgemm, then the same epilogue in a
// loop. gemm_bf16 switches to it by itself; public so that every machine can test it.
void gemm_bf16_sgemm(const GemmDesc& d, const bfloat16* A, const bfloat16* B, void* C,
                     const float* bias = nullptr);

// Throws pw::Error ("[gemm_bf16] ...") when d is not a valid descriptor (non-positive sizes,
// negative strides, a matrix without a unit-stride dim, overlapping C matrices).
void validate(const GemmDesc& d);

// The implementation oneDNN picks at the ViT shapes (e.g. "brg:avx512_core_amx_bf16",
// "brg:avx512_core_bf16", "gemm:jit", "ref:any", or "sgemm:openblas (...)" for the fallback):
// one name when the linear and attention shapes agree, else "linear: ..., attention scores:
// ..." per shape. And oneDNN's detected ISA name ("avx512_core_amx", "avx512_core_bf16",
// "avx512_core", "avx2", ...). For `vit bench` and run reports.
std::string gemm_bf16_implementation();
std::string onednn_cpu_isa();
// The implementation for one descriptor, with " (packs A,B)" when operands are packed first
// (creating and caching its primitive).
std::string gemm_bf16_implementation(const GemmDesc& d);

// True when the CPU has native bf16 dot-product units (AVX512_BF16 or AMX-BF16) and oneDNN may
// use them: the CPU's flags (__builtin_cpu_supports) and oneDNN's effective ISA, which
// ONEDNN_MAX_CPU_ISA can lower to exercise the fallbacks on a capable machine.
bool cpu_has_native_bf16();

}  // namespace pw::gemm
