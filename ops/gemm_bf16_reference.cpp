// The bf16 GEMM descriptor's rules (validation, operand layouts) and the two plain kernels that
// share its contract: the triple-loop reference and the sgemm fallback for CPUs where oneDNN has
// no bf16 matmul.
#include <algorithm>
#include <cmath>
#include <optional>

#include "ops/blas.h"
#include "ops/gemm_bf16.h"
#include "ops/gemm_bf16_layout.h"

namespace pw::gemm {
namespace detail {
namespace {

std::string strides_str(const MatrixStrides& s) {
  return fmt::format("({},{},{},{})", s.batch0, s.batch1, s.row, s.col);
}

// Whether a (rows, cols) matrix is stored row-major (unit col stride, rows at least cols apart)
// rather than transposed (unit row stride, cols at least rows apart); nullopt for neither.
// Size-1 dims may carry any stride, as in ops/blas.h's layout_of.
std::optional<bool> row_major(std::int64_t rows, std::int64_t cols, const MatrixStrides& s) {
  if ((cols == 1 || s.col == 1) && (rows == 1 || s.row >= cols)) return true;
  if ((rows == 1 || s.row == 1) && (cols == 1 || s.col >= rows)) return false;
  return std::nullopt;
}

void validate_matrix(const GemmDesc& d, const char* name, std::int64_t rows, std::int64_t cols,
                     const MatrixStrides& s, bool output) {
  PW_CHECK(s.batch0 >= 0 && s.batch1 >= 0 && s.row >= 0 && s.col >= 0,
           "[gemm_bf16] {} has a negative stride: {}", name, desc_str(d));
  PW_CHECK(row_major(rows, cols, s).has_value(),
           "[gemm_bf16] {} ({}x{}) needs a unit stride in one dim and the other stride at least "
           "that dim's extent (row-major or transposed), got row stride {} and col stride {}: {}",
           name, rows, cols, s.row, s.col, desc_str(d));
  if (!output) return;
  // C's elements must not overlap: ordered by stride, each dim of extent > 1 must step past
  // everything the smaller-strided dims reach.
  std::array<std::pair<std::int64_t, std::int64_t>, 4> dims{
      {{s.batch0, d.batch0}, {s.batch1, d.batch1}, {s.row, rows}, {s.col, cols}}};
  std::sort(dims.begin(), dims.end());
  std::int64_t reach = 0;  // largest offset reached by the dims before
  for (const auto& [stride, extent] : dims) {
    if (extent == 1) continue;
    PW_CHECK(stride > reach, "[gemm_bf16] C's matrices overlap (a batch stride of 0?): {}",
             desc_str(d));
    reach += (extent - 1) * stride;
  }
}

}  // namespace

std::string desc_str(const GemmDesc& d) {
  return fmt::format("batch ({},{}) M={} N={} K={}, strides (batch0,batch1,row,col) A {} B {} C {}",
                     d.batch0, d.batch1, d.M, d.N, d.K, strides_str(d.a), strides_str(d.b),
                     strides_str(d.c));
}

Layout layout_of(const GemmDesc& d, std::int64_t rows, std::int64_t cols, const MatrixStrides& s) {
  const std::int64_t e0 = s.batch0 == 0 ? 1 : d.batch0, e1 = s.batch1 == 0 ? 1 : d.batch1;
  Layout l;
  l.row_major = *row_major(rows, cols, s);
  std::int64_t row = s.row, col = s.col, matrix = 0;
  if (l.row_major) {
    col = 1;
    if (rows == 1) row = cols;
    matrix = rows * row;
  } else {
    row = 1;
    if (cols == 1) col = rows;
    matrix = cols * col;
  }
  const std::int64_t b1 = e1 == 1 ? matrix : s.batch1;
  const std::int64_t b0 = e0 == 1 ? std::max(e1 * b1, matrix) : s.batch0;
  l.dims = {e0, e1, rows, cols};
  l.strides = {b0, b1, row, col};
  return l;
}

Layout dense_layout(const Layout& l, bool keep_orientation) {
  const auto& n = l.dims;
  Layout r;
  r.dims = n;
  r.row_major = l.row_major || !keep_orientation;
  const std::int64_t matrix = n[2] * n[3];
  r.strides = {n[1] * matrix, matrix, r.row_major ? n[3] : 1, r.row_major ? 1 : n[2]};
  return r;
}

std::array<std::size_t, 4> memory_order(const Layout& l) {
  std::array<std::size_t, 4> order{0, 1, 2, 3};
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t x, std::size_t y) { return l.strides[x] > l.strides[y]; });
  return order;
}

Layout compact_layout(const Layout& l) {
  Layout r = l;
  std::int64_t stride = 1;
  const auto order = memory_order(l);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    r.strides[*it] = stride;
    stride *= l.dims[*it];
  }
  return r;
}

bool same_layout(const Layout& a, const Layout& b) {
  for (std::size_t i = 0; i < 4; ++i)
    if (a.dims[i] != b.dims[i] || (a.dims[i] > 1 && a.strides[i] != b.strides[i])) return false;
  return true;
}

bool is_dense(const Layout& l) {
  std::int64_t span = 1;
  for (std::size_t i = 0; i < 4; ++i) span += (l.dims[i] - 1) * l.strides[i];
  return span == numel_of(l);
}

void check_pointers(const GemmDesc& d, const bfloat16* A, const bfloat16* B, const void* C,
                    const float* bias) {
  PW_CHECK(A != nullptr && B != nullptr && C != nullptr, "[gemm_bf16] null operand pointer: {}",
           desc_str(d));
  PW_CHECK(!d.has_bias || bias != nullptr, "[gemm_bf16] has_bias is set but bias is null: {}",
           desc_str(d));
}

}  // namespace detail

namespace {

using detail::Layout;

// The epilogue of one element of C (column n, at offset oc) from its scaled product
// alpha * sum_k A B: + bias, + C_old, then GELU.
float epilogue(const GemmDesc& d, float scaled_product, std::int64_t n, const float* bias,
               const void* C, std::int64_t oc) {
  float r = scaled_product;
  if (d.has_bias) r += bias[n];
  if (d.accumulate)
    r += d.c_bf16 ? static_cast<float>(static_cast<const bfloat16*>(C)[oc])
                  : static_cast<const float*>(C)[oc];
  // Exact GELU: x Phi(x) = x (1 + erf(x / sqrt 2)) / 2.
  if (d.gelu) r = 0.5f * r * (1.0f + std::erf(r * 0.70710678118654752f));
  return r;
}

void store(const GemmDesc& d, void* C, std::int64_t oc, float r) {
  if (d.c_bf16)
    static_cast<bfloat16*>(C)[oc] = bfloat16(r);
  else
    static_cast<float*>(C)[oc] = r;
}

}  // namespace

void validate(const GemmDesc& d) {
  PW_CHECK(d.batch0 > 0 && d.batch1 > 0 && d.M > 0 && d.N > 0 && d.K > 0,
           "[gemm_bf16] sizes must be positive: {}", detail::desc_str(d));
  detail::validate_matrix(d, "A", d.M, d.K, d.a, false);
  detail::validate_matrix(d, "B", d.K, d.N, d.b, false);
  detail::validate_matrix(d, "C", d.M, d.N, d.c, true);
}

void gemm_bf16_reference(const GemmDesc& d, const bfloat16* A, const bfloat16* B, void* C,
                         const float* bias) {
  validate(d);
  detail::check_pointers(d, A, B, C, bias);
  const auto &sa = d.a, &sb = d.b, &sc = d.c;
  for (std::int64_t i0 = 0; i0 < d.batch0; ++i0)
    for (std::int64_t i1 = 0; i1 < d.batch1; ++i1)
      for (std::int64_t m = 0; m < d.M; ++m)
        for (std::int64_t n = 0; n < d.N; ++n) {
          const bfloat16* a = A + i0 * sa.batch0 + i1 * sa.batch1 + m * sa.row;
          const bfloat16* b = B + i0 * sb.batch0 + i1 * sb.batch1 + n * sb.col;
          float acc = 0.0f;
          for (std::int64_t k = 0; k < d.K; ++k)
            acc += static_cast<float>(a[k * sa.col]) * static_cast<float>(b[k * sb.row]);
          const std::int64_t oc = i0 * sc.batch0 + i1 * sc.batch1 + m * sc.row + n * sc.col;
          store(d, C, oc, epilogue(d, d.alpha * acc, n, bias, C, oc));
        }
}

void gemm_bf16_sgemm(const GemmDesc& d, const bfloat16* A, const bfloat16* B, void* C,
                     const float* bias) {
  validate(d);
  detail::check_pointers(d, A, B, C, bias);
  const Layout la = detail::layout_of(d, d.M, d.K, d.a), lb = detail::layout_of(d, d.K, d.N, d.b),
               lc = detail::layout_of(d, d.M, d.N, d.c);
  // float32 copies without gaps: A and B keep their orientation (BLAS takes it as a flag), the
  // product is row-major.
  const Layout fa = detail::dense_layout(la, true), fb = detail::dense_layout(lb, true),
               fc = detail::dense_layout(lc, false);
  thread_local std::array<detail::Scratch, 3> scratch;
  float* a = scratch[0].get<float>(numel_of(fa));
  float* b = scratch[1].get<float>(numel_of(fb));
  float* c = scratch[2].get<float>(numel_of(fc));
  detail::copy_box(A, la, a, fa);
  detail::copy_box(B, lb, b, fb);
  // A broadcast batch dim has extent 1 in the copies.
  auto at = [](float* base, const Layout& l, std::int64_t i0, std::int64_t i1) {
    return base + (l.dims[0] == 1 ? 0 : i0) * l.strides[0] +
           (l.dims[1] == 1 ? 0 : i1) * l.strides[1];
  };
  const auto ta = fa.row_major ? CblasNoTrans : CblasTrans,
             tb = fb.row_major ? CblasNoTrans : CblasTrans;
  for (std::int64_t i0 = 0; i0 < d.batch0; ++i0)
    for (std::int64_t i1 = 0; i1 < d.batch1; ++i1)
      blas::gemm(ta, tb, d.M, d.N, d.K, d.alpha, at(a, fa, i0, i1), fa.row_major ? d.K : d.M,
                 at(b, fb, i0, i1), fb.row_major ? d.N : d.K, 0.0f, at(c, fc, i0, i1), d.N);
  strided_loop<2>(lc.dims, {fc.strides, lc.strides},
                  [&](const std::array<std::int64_t, 2>& off, std::int64_t len,
                      const std::array<std::int64_t, 2>& step) {
                    for (std::int64_t i = 0; i < len; ++i) {
                      // In the dense row-major product the column is the offset modulo N.
                      const std::int64_t of = off[0] + i * step[0], oc = off[1] + i * step[1];
                      store(d, C, oc, epilogue(d, c[of], of % d.N, bias, C, oc));
                    }
                  });
}

}  // namespace pw::gemm
