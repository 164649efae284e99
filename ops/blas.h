// Internal helpers shared by the GEMM-based ops (matmul, linear, conv2d, attention): typed
// cblas wrappers and the mapping from a strided 2-D view to BLAS (transpose flag, ld).
#pragma once
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace pw::blas {

// How BLAS reads a strided (rows, cols) matrix: as stored (NoTrans, row-major with leading
// dimension ld) or as the transpose of a row-major (cols, rows) matrix (Trans).
struct Layout {
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  std::int64_t ld = 1;
};

// The BLAS layout of a (rows, cols) view with the given element strides, or nothing when the
// view has no unit stride (then it must be copied). Size-1 dims may carry any stride.
inline std::optional<Layout> layout_of(std::int64_t rows, std::int64_t cols, std::int64_t s_row,
                                       std::int64_t s_col) {
  if ((cols == 1 || s_col == 1) && (rows == 1 || s_row >= std::max<std::int64_t>(cols, 1)))
    return Layout{CblasNoTrans, rows == 1 ? std::max<std::int64_t>(cols, 1) : s_row};
  if ((rows == 1 || s_row == 1) && (cols == 1 || s_col >= std::max<std::int64_t>(rows, 1)))
    return Layout{CblasTrans, cols == 1 ? std::max<std::int64_t>(rows, 1) : s_col};
  return std::nullopt;
}

// Layout of the last two dims of t.
inline std::optional<Layout> layout_of(const Tensor& t) {
  const auto r = t.dim();
  return layout_of(t.shape()[r - 2], t.shape()[r - 1], t.strides()[r - 2], t.strides()[r - 1]);
}

// C (M, N) = alpha op(A) (M, K) op(B) (K, N) + beta C, row-major.
inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, std::int64_t M, std::int64_t N,
                 std::int64_t K, float alpha, const float* A, std::int64_t lda, const float* B,
                 std::int64_t ldb, float beta, float* C, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
              alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
              static_cast<int>(ldc));
}
inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, std::int64_t M, std::int64_t N,
                 std::int64_t K, double alpha, const double* A, std::int64_t lda, const double* B,
                 std::int64_t ldb, double beta, double* C, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
              alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
              static_cast<int>(ldc));
}

// t itself when it is contiguous, else a contiguous copy (no autograd).
inline Tensor dense(const Tensor& t) {
  return t.is_contiguous() ? t : copy_contiguous(t);
}

// ---- building blocks implemented in ops/matmul.cpp, reused by linear, conv2d ----

// The operands a GEMM op reads: as given, or under autocast (core/autocast.h) their bfloat16
// copies, weights from the per-step cache. Ops save these for backward: a bfloat16 activation
// saved instead of its float32 original halves the memory it holds and the traffic to read it.
struct GemmOperands {
  Tensor a, b;
};
GemmOperands gemm_operands(const Tensor& a, const Tensor& b);

// a @ b for a (..., M, K) and b (..., K, N) whose batch dims broadcast; no autograd. Strided
// operands go to BLAS with transpose flags; batches of small products run in parallel.
// bfloat16 operands (both) go to the bf16 GEMM engine (ops/gemm_bf16.h) and give float32.
Tensor matmul_values(const Tensor& a, const Tensor& b);
// The (R, in) rows of x (..., in): a view when the leading dims fold, else a copy.
Tensor rows_of(const Tensor& x);
// y (R, out) = x (R, in) w^T + b for w (out, in) and optional b (out): one GEMM, no autograd.
// x and w both float32/float64, or both bfloat16 (then y is float32 and b float32).
Tensor linear_rows(const Tensor& x, const Tensor& w, const Tensor& b);
struct LinearGrads {
  Tensor dx, dw, db;
};
// Gradients of linear_rows for g (R, out): dx = g w, dw = g^T x, db = column sums of g; only
// the requested ones are computed. With bfloat16 x and w, g is rounded to bfloat16 for the two
// GEMMs (as autocast does) and every gradient is float32.
LinearGrads linear_rows_backward(const Tensor& g, const Tensor& x, const Tensor& w, bool need_dx,
                                 bool need_dw, bool need_db);

}  // namespace pw::blas
