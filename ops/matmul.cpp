// matmul and linear: every product is one cblas_{s,d}gemm call per matrix (or one for a whole
// batch when the batch folds into the rows), with transposed views passed as BLAS flags. Under
// autocast the operands are bfloat16 and the products go to the bf16 GEMM engine (one call for
// up to two batch dims), accumulating and returning float32.
#include "ops/matmul.h"

#include <omp.h>

#include <type_traits>

#include "core/autocast.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/broadcast.h"
#include "ops/gemm_bf16.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace pw {
namespace blas {
namespace {

// A view of the last two dims swapped (no autograd, no copy).
Tensor swap_last2(const Tensor& t) {
  Shape shape = t.shape(), strides = t.strides();
  const auto r = shape.size();
  std::swap(shape[r - 1], shape[r - 2]);
  std::swap(strides[r - 1], strides[r - 2]);
  return make_view(t, shape, strides, t.offset());
}

// Per-GEMM multiply-adds below which a batch runs as an OpenMP loop of single-threaded GEMMs
// (OpenBLAS-openmp runs one thread when called inside a parallel region) instead of a sequence
// of multithreaded ones, whose fork/join would dominate.
constexpr std::int64_t kSmallGemm = std::int64_t{1} << 21;

template <typename T>
void matmul_kernel(const Tensor& a, const Tensor& b, const Tensor& out, const Shape& batch) {
  const auto ra = a.dim(), rb = b.dim();
  const std::int64_t M = a.shape()[ra - 2], K = a.shape()[ra - 1], N = b.shape()[rb - 1];
  const Layout la = *layout_of(a), lb = *layout_of(b);
  const std::int64_t nb = numel_of(batch);
  // Offsets of each batch matrix in a and b (broadcast dims have stride 0).
  const auto nbd = static_cast<std::int64_t>(batch.size());
  Shape sa(batch.size(), 0), sb(batch.size(), 0);
  for (std::int64_t d = 0; d < nbd; ++d) {
    const std::int64_t da = d - (nbd - (ra - 2)), db = d - (nbd - (rb - 2));
    if (da >= 0 && a.shape()[da] != 1) sa[d] = a.strides()[da];
    if (db >= 0 && b.shape()[db] != 1) sb[d] = b.strides()[db];
  }
  auto offsets = [&](std::int64_t i, std::int64_t& oa, std::int64_t& ob) {
    oa = ob = 0;
    for (std::int64_t d = nbd - 1; d >= 0; --d) {
      const std::int64_t c = i % batch[d];
      i /= batch[d];
      oa += c * sa[d];
      ob += c * sb[d];
    }
  };
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  auto one = [&](std::int64_t i) {
    std::int64_t oa, ob;
    offsets(i, oa, ob);
    gemm(la.trans, lb.trans, M, N, K, T(1), pa + oa, la.ld, pb + ob, lb.ld, T(0), po + i * M * N,
         N);
  };
  if (nb > 1 && M * N * K < kSmallGemm && nb * M * N * K >= kParallelGrain &&
      omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < nb; ++i) one(i);
  } else {
    for (std::int64_t i = 0; i < nb; ++i) one(i);
  }
}

// The engine's view of a BLAS layout: a NoTrans matrix is row-major with leading dimension ld;
// a Trans one is the transpose of such a matrix, so its rows are adjacent elements.
gemm::MatrixStrides strides_of(const Layout& l) {
  return l.trans == CblasNoTrans ? gemm::MatrixStrides{0, 0, l.ld, 1}
                                 : gemm::MatrixStrides{0, 0, 1, l.ld};
}

// matmul_kernel for bfloat16 operands and a float32 out: one engine call covers up to two
// batch dims (broadcast ones with stride 0); deeper batches loop over the outer dims.
void matmul_kernel_bf16(const Tensor& a, const Tensor& b, const Tensor& out, const Shape& batch) {
  const auto ra = a.dim(), rb = b.dim();
  gemm::GemmDesc d;
  d.M = a.shape()[ra - 2], d.K = a.shape()[ra - 1], d.N = b.shape()[rb - 1];
  d.a = strides_of(*layout_of(a));
  d.b = strides_of(*layout_of(b));
  d.c = {0, 0, d.N, 1};
  // Batch strides of a and b over `batch` (0 where an operand is broadcast).
  const auto nbd = static_cast<std::int64_t>(batch.size());
  Shape sa(batch.size(), 0), sb(batch.size(), 0), sc = contiguous_strides(batch);
  for (std::int64_t i = 0; i < nbd; ++i) {
    const std::int64_t da = i - (nbd - (ra - 2)), db = i - (nbd - (rb - 2));
    if (da >= 0 && a.shape()[da] != 1) sa[i] = a.strides()[da];
    if (db >= 0 && b.shape()[db] != 1) sb[i] = b.strides()[db];
    sc[i] *= d.M * d.N;
  }
  const std::int64_t inner = std::min<std::int64_t>(nbd, 2), outer_dims = nbd - inner;
  if (inner >= 1) {
    d.batch1 = batch[nbd - 1], d.a.batch1 = sa[nbd - 1], d.b.batch1 = sb[nbd - 1];
    d.c.batch1 = sc[nbd - 1];
  }
  if (inner == 2) {
    d.batch0 = batch[nbd - 2], d.a.batch0 = sa[nbd - 2], d.b.batch0 = sb[nbd - 2];
    d.c.batch0 = sc[nbd - 2];
  }
  const std::int64_t n_outer = numel_of(Shape(batch.begin(), batch.begin() + outer_dims));
  for (std::int64_t i = 0; i < n_outer; ++i) {
    std::int64_t oa = 0, ob = 0, oc = 0;
    for (std::int64_t dim = outer_dims - 1, r = i; dim >= 0; --dim) {
      const std::int64_t c = r % batch[dim];
      r /= batch[dim];
      oa += c * sa[dim], ob += c * sb[dim], oc += c * sc[dim];
    }
    gemm::gemm_bf16(d, a.data<bfloat16>() + oa, b.data<bfloat16>() + ob, out.data<float>() + oc);
  }
}

// Column sums of a contiguous (R, C) matrix, parallel over columns; when `rounded` is given, the
// same pass also writes g rounded to bfloat16 there (the operand of the bf16 backward GEMMs).
template <typename T>
void column_sum(const T* g, std::int64_t R, std::int64_t C, T* out, bfloat16* rounded = nullptr) {
  const std::int64_t grain = R * C >= kParallelGrain ? 16 : C + 1;
  parallel_for(C, grain, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c) out[c] = T(0);
    for (std::int64_t r = 0; r < R; ++r) {
      const T* row = g + r * C;
      for (std::int64_t c = c0; c < c1; ++c) out[c] += row[c];
      if constexpr (std::is_same_v<T, float>)
        if (rounded)
          for (std::int64_t c = c0; c < c1; ++c)
            rounded[r * C + c].bits = bfloat16::from_float_bits(row[c]);
    }
  });
}

}  // namespace

GemmOperands gemm_operands(const Tensor& a, const Tensor& b) {
  // Under autocast each float32 operand is cast (weights through the cache); an operand that is
  // bfloat16 already (an attention output, say) is read as it is.
  auto cast = [](const Tensor& t) { return t.dtype() == DType::Float32 ? autocast_bf16(t) : t; };
  const bool mixed = (a.dtype() == DType::Float32 || a.dtype() == DType::BFloat16) &&
                     (b.dtype() == DType::Float32 || b.dtype() == DType::BFloat16);
  if (Autocast::is_enabled() && mixed) return {cast(a), cast(b)};
  return {a, b};
}

Tensor matmul_values(const Tensor& a_in, const Tensor& b_in) {
  // One bfloat16 operand makes it a bf16 product: the other is rounded too.
  const bool bf16 = a_in.dtype() == DType::BFloat16 || b_in.dtype() == DType::BFloat16;
  auto prepare = [bf16](const Tensor& t) {
    if (bf16 && t.dtype() != DType::BFloat16) return copy_contiguous(t, DType::BFloat16);
    return layout_of(t) ? t : copy_contiguous(t);
  };
  Tensor a = prepare(a_in), b = prepare(b_in);
  const auto ra = a.dim(), rb = b.dim();
  const Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                       Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  const std::int64_t M = a.shape()[ra - 2], K = a.shape()[ra - 1], N = b.shape()[rb - 1];
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  // b shared by every batch matrix and a contiguous: the batch folds into the rows of a.
  if (numel_of(Shape(b.shape().begin(), b.shape().end() - 2)) == 1 && a.is_contiguous() && ra > 2) {
    Tensor a2 = make_view(a, {numel_of(batch) * M, K}, {K, 1}, a.offset());
    Tensor b2 = make_view(b, {K, N}, {b.strides()[rb - 2], b.strides()[rb - 1]}, b.offset());
    Tensor o = matmul_values(a2, b2);
    return make_view(o, out_shape, contiguous_strides(out_shape), 0);
  }
  const DType out_dtype = bf16 ? DType::Float32 : a.dtype();
  if (K == 0 || numel_of(out_shape) == 0) return zeros(out_shape, out_dtype);
  Tensor out = empty(out_shape, out_dtype);
  if (bf16)
    matmul_kernel_bf16(a, b, out, batch);
  else
    PW_DISPATCH(a.dtype(), [&] { matmul_kernel<scalar_t>(a, b, out, batch); });
  return out;
}

Tensor rows_of(const Tensor& x) {
  const std::int64_t in = x.shape().back(), R = in == 0 ? 0 : x.numel() / in;
  if (x.dim() == 2 && layout_of(x)) return x;
  Tensor c = dense(x);
  return make_view(c, {R, in}, {in, 1}, c.offset());
}

namespace {

// linear_rows for bfloat16 x and w: the bias is the GEMM's epilogue.
Tensor linear_rows_bf16(const Tensor& x, const Tensor& w, const Tensor& b) {
  const std::int64_t R = x.shape()[0], in = x.shape()[1], out_f = w.shape()[0];
  PW_CHECK(w.dtype() == DType::BFloat16 && (!b.defined() || b.dtype() == DType::Float32),
           "[linear] bfloat16 input needs a bfloat16 weight and a float32 bias, got {} and {}",
           dtype_name(w.dtype()), b.defined() ? dtype_name(b.dtype()) : "none");
  if (R == 0 || out_f == 0 || in == 0)  // nothing to multiply: the float32 path fills y
    return linear_rows(copy_contiguous(x, DType::Float32), copy_contiguous(w, DType::Float32), b);
  Tensor y = empty({R, out_f}, DType::Float32);
  Tensor wv = layout_of(w) ? w : copy_contiguous(w);
  Tensor bd = b.defined() ? dense(b) : Tensor();
  gemm::GemmDesc d;
  d.M = R, d.N = out_f, d.K = in;
  d.a = strides_of(*layout_of(x));
  d.b = strides_of(*layout_of(in, out_f, wv.strides()[1], wv.strides()[0]));  // w^T (in, out)
  d.c = {0, 0, out_f, 1};
  d.has_bias = b.defined();
  gemm::gemm_bf16(d, x.data<bfloat16>(), wv.data<bfloat16>(), y.data<float>(),
                  bd.defined() ? bd.data<float>() : nullptr);
  return y;
}

}  // namespace

Tensor linear_rows(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (x.dtype() == DType::BFloat16) return linear_rows_bf16(x, w, b);
  const std::int64_t R = x.shape()[0], in = x.shape()[1], out_f = w.shape()[0];
  Tensor y = empty({R, out_f}, x.dtype());
  PW_DISPATCH(x.dtype(), [&] {
    scalar_t* py = y.data<scalar_t>();
    scalar_t beta = 0;
    if (b.defined()) {
      // Rows start as the bias and the GEMM accumulates onto them (beta = 1).
      Tensor bd = dense(b);
      const scalar_t* pb = bd.data<scalar_t>();
      parallel_for(R, std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(out_f, 1)),
                   [&](std::int64_t r0, std::int64_t r1) {
                     for (std::int64_t r = r0; r < r1; ++r)
                       std::copy(pb, pb + out_f, py + r * out_f);
                   });
      beta = 1;
    }
    if (R == 0 || out_f == 0) return;
    if (in == 0) {
      if (!b.defined()) std::fill(py, py + R * out_f, scalar_t(0));
      return;
    }
    const Layout lx = *layout_of(x);
    Tensor wv = layout_of(w) ? w : copy_contiguous(w);
    // w^T (in, out) is w's view with strides swapped.
    const Layout lw = *layout_of(in, out_f, wv.strides()[1], wv.strides()[0]);
    gemm(lx.trans, lw.trans, R, out_f, in, scalar_t(1), x.data<scalar_t>(), lx.ld,
         wv.data<scalar_t>(), lw.ld, beta, py, out_f);
  });
  return y;
}

LinearGrads linear_rows_backward(const Tensor& g_in, const Tensor& x, const Tensor& w, bool need_dx,
                                 bool need_dw, bool need_db) {
  LinearGrads r;
  Tensor g = dense(g_in);
  const std::int64_t R = g.shape()[0], out_f = g.shape()[1];
  // bfloat16 operands: g is rounded once for both GEMMs, in the same pass as the bias
  // gradient's column sums (which add g unrounded).
  const bool round = x.dtype() == DType::BFloat16 && (need_dx || need_dw);
  Tensor gm = round ? empty(g.shape(), DType::BFloat16) : g;
  if (need_db) {
    r.db = empty({out_f}, g.dtype());
    PW_DISPATCH(g.dtype(), [&] {
      column_sum(g.data<scalar_t>(), R, out_f, r.db.data<scalar_t>(),
                 round ? gm.data<bfloat16>() : nullptr);
    });
  } else if (round) {
    copy_into(gm, g);
  }
  if (need_dx) r.dx = matmul_values(gm, w);              // (R, out) @ (out, in)
  if (need_dw) r.dw = matmul_values(swap_last2(gm), x);  // (out, R) @ (R, in), one GEMM
  return r;
}

}  // namespace blas

namespace {

// The 2-D/batched product with autograd; both operands have at least 2 dims.
Tensor matmul_nd(const Tensor& a_in, const Tensor& b_in) {
  const auto [a_op, b_op] = blas::gemm_operands(a_in, b_in);
  Tensor out = blas::matmul_values(a_op, b_op);
  if (needs_grad({a_in, b_in}))
    record("matmul", out, {a_in, b_in},
           [sa = SavedTensor(a_op), sb = SavedTensor(b_op)](const Tensor& g_in,
                                                            const Node& n) -> std::vector<Tensor> {
             Tensor a = sa.get(), b = sb.get(), da, db;
             // Under autocast the operands were bfloat16: round g once for both products.
             const Tensor g =
                 a.dtype() == DType::BFloat16 ? copy_contiguous(g_in, DType::BFloat16) : g_in;
             // dA = G B^T, dB = A^T G, each summed over the batch dims the operand was broadcast
             // on.
             if (n.needs_input_grad(0))
               da = sum_to(blas::matmul_values(g, blas::swap_last2(b)), a.shape());
             if (n.needs_input_grad(1)) {
               if (b.dim() == 2 && a.dim() > 2) {
                 // Shared b: sum_i A_i^T G_i is one GEMM over all rows, (K, B*M) @ (B*M, N).
                 Tensor a2 = blas::rows_of(a), g2 = blas::rows_of(g);
                 db = blas::matmul_values(blas::swap_last2(a2), g2);
               } else {
                 db = sum_to(blas::matmul_values(blas::swap_last2(a), g), b.shape());
               }
             }
             return {da, db};
           });
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  PW_CHECK(a.dim() >= 1 && b.dim() >= 1,
           "[matmul] both arguments need at least 1 dim, got {} and {}", shape_str(a.shape()),
           shape_str(b.shape()));
  auto autocast_dtype = [](DType t) { return t == DType::Float32 || t == DType::BFloat16; };
  PW_CHECK(a.dtype() == b.dtype() ||
               (Autocast::is_enabled() && autocast_dtype(a.dtype()) && autocast_dtype(b.dtype())),
           "[matmul] dtype mismatch: {} and {}", dtype_name(a.dtype()), dtype_name(b.dtype()));
  const std::int64_t ka = a.shape().back(),
                     kb = b.dim() == 1 ? b.shape()[0] : b.shape()[b.dim() - 2];
  PW_CHECK(ka == kb, "[matmul] cannot multiply {} by {}", shape_str(a.shape()),
           shape_str(b.shape()));
  if (a.dim() > 2 || b.dim() > 2) {
    Shape ba(a.shape().begin(), a.shape().end() - std::min<std::int64_t>(a.dim(), 2));
    Shape bb(b.shape().begin(), b.shape().end() - std::min<std::int64_t>(b.dim(), 2));
    const std::size_t n = std::max(ba.size(), bb.size());
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t x = i < ba.size() ? ba[ba.size() - 1 - i] : 1;
      const std::int64_t y = i < bb.size() ? bb[bb.size() - 1 - i] : 1;
      PW_CHECK(x == y || x == 1 || y == 1,
               "[matmul] cannot multiply {} by {}: batch dims {} and {} do not broadcast",
               shape_str(a.shape()), shape_str(b.shape()), shape_str(ba), shape_str(bb));
    }
  }
  // 1-D operands as torch.matmul: a vector on the left is a row, on the right a column, and
  // that dim is removed from the result.
  if (a.dim() == 1 && b.dim() == 1) return reshape(matmul_nd(unsqueeze(a, 0), unsqueeze(b, 1)), {});
  if (a.dim() == 1) return squeeze(matmul_nd(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul_nd(a, unsqueeze(b, 1)), -1);
  return matmul_nd(a, b);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  PW_CHECK(x.dim() >= 1 && weight.dim() == 2 && x.shape().back() == weight.shape()[1],
           "[linear] input {} does not match weight {} (out_features, in_features)",
           shape_str(x.shape()), shape_str(weight.shape()));
  PW_CHECK(!bias.defined() || (bias.dim() == 1 && bias.shape()[0] == weight.shape()[0]),
           "[linear] bias {} does not match weight {}", shape_str(bias.shape()),
           shape_str(weight.shape()));
  // Under autocast a bfloat16 input (an attention output) meets float32 parameters.
  const bool autocast_input = Autocast::is_enabled() && x.dtype() == DType::BFloat16;
  PW_CHECK((x.dtype() == weight.dtype() || autocast_input) &&
               (!bias.defined() || bias.dtype() == weight.dtype()),
           "[linear] dtype mismatch between input {}, weight {} and bias {}", dtype_name(x.dtype()),
           dtype_name(weight.dtype()), bias.defined() ? dtype_name(bias.dtype()) : "none");
  const auto [x2, w] = blas::gemm_operands(blas::rows_of(x), weight);
  Tensor y2 = blas::linear_rows(x2, w, bias);
  Shape out_shape = x.shape();
  out_shape.back() = weight.shape()[0];
  Tensor out = make_view(y2, out_shape, contiguous_strides(out_shape), 0);
  if (needs_grad({x, weight, bias}))
    record("linear", out, {x, weight, bias},
           [sx = SavedTensor(x2), sw = SavedTensor(w), x_shape = x.shape()](
               const Tensor& g, const Node& n) -> std::vector<Tensor> {
             Tensor w = sw.get();
             Tensor g2 = blas::rows_of(g);
             auto r = blas::linear_rows_backward(g2, sx.get(), w, n.needs_input_grad(0),
                                                 n.needs_input_grad(1), n.needs_input_grad(2));
             if (r.dx.defined()) r.dx = make_view(r.dx, x_shape, contiguous_strides(x_shape), 0);
             return {r.dx, r.dw, r.db};
           });
  return out;
}

}  // namespace pw
