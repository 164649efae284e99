// scaled_dot_product_attention: one fused forward kernel and one fused backward kernel, each
// an OpenMP loop over the B*H (batch, head) pairs. Within a pair (q: Nq x Dh, k: Nk x Dh,
// v: Nk x Dv), small single-threaded GEMMs and one pass over the rows of S:
//
//   forward:  S = scale q k^T + mask,  P = softmax_rows(S),  Pd = dropout(P),  O = Pd v
//   backward: dV = Pd^T dO,  dPd = dO v^T,  dP = dropout(dPd),  dS = P * (dP - rowsum(dP * P)),
//             dQ = scale dS k,  dK = scale dS^T q
//
// q/k/v are read in place through their strides (a (B, N, 3, H, Dh) qkv projection permuted to
// (3, B, H, N, Dh) has rows Dh apart with ld 3*H*Dh), so no copy is made for them. O and the
// gradients are written in (B, N, H, D) memory order and returned as (B, H, N, D) views, so
// that the usual transpose(1, 2).reshape(B, N, H*D) that follows is free.
// OpenBLAS built for OpenMP runs one thread when called inside a parallel region, so the
// per-pair GEMMs do not oversubscribe the cores.
// Under autocast (core/autocast.h) q, k, v are read in bfloat16 (and the output is bfloat16, as
// PyTorch's), and each of the products is one
// batched bf16 GEMM over all B*H pairs (ops/gemm_bf16.h); the softmax and its gradient run in
// float32 on rows of S between them and write the bfloat16 operand of the next product.
// Saved for backward in bfloat16: q, k, v and the probabilities P (which the forward's second
// product read in bfloat16 too, so the backward differentiates exactly what was computed).
// FP exceptions are never inspected: without trapping math GCC may turn the selects of
// ops/fast_math.h into blends and vectorise the loops (no value changes, unlike -ffast-math).
#ifndef __clang__  // clang does not trap math by default and has no such pragma
#pragma GCC optimize("no-trapping-math")
#endif
#include "ops/attention.h"

#include <omp.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>

#include "core/autocast.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"
#include "ops/fast_math.h"
#include "ops/gemm_bf16.h"
#include "ops/kernels.h"

namespace pw {
namespace {

using blas::Layout;

// One (B, H, N, D) operand as BLAS sees each of its B*H matrices.
struct Operand {
  Tensor t;  // the tensor read (the input, or its copy when no dim has unit stride)
  Layout lay;
  std::int64_t sb = 0, sh = 0;  // element strides between batches and heads

  std::int64_t offset(std::int64_t b, std::int64_t h) const { return b * sb + h * sh; }
};

Operand operand(const Tensor& x) {
  Operand o;
  auto lay = blas::layout_of(x);
  o.t = lay ? x : copy_contiguous(x);
  o.lay = lay ? *lay : *blas::layout_of(o.t);
  o.sb = o.t.strides()[0];
  o.sh = o.t.strides()[1];
  return o;
}

// The layout of X^T given the layout of X: the same memory read with the other flag.
Layout transposed(Layout l) {
  return {l.trans == CblasNoTrans ? CblasTrans : CblasNoTrans, l.ld};
}

// A (B, H, N, D) tensor stored in (B, N, H, D) order.
Tensor empty_bnhd(std::int64_t B, std::int64_t H, std::int64_t N, std::int64_t D, DType dt) {
  Tensor base = empty({B, N, H, D}, dt);
  return make_view(base, {B, H, N, D}, {N * H * D, D, H * D, 1}, 0);
}

struct MaskView {
  Tensor t;
  Shape strides;  // broadcast strides over (B, H, Nq, Nk)
  bool is_bool = false;
};

struct DropoutMask {
  std::vector<std::uint8_t> keep;  // (B, H, Nq, Nk), 1 = kept
  double scale = 1.0;              // 1 / (1 - p)
};

template <typename T>
void attention_forward(const Operand& q, const Operand& k, const Operand& v, const MaskView* mask,
                       const DropoutMask* drop, T scale, T* probs, const Tensor& out) {
  const std::int64_t B = q.t.shape()[0], H = q.t.shape()[1], Nq = q.t.shape()[2],
                     Dh = q.t.shape()[3], Nk = k.t.shape()[2], Dv = v.t.shape()[3];
  const T* pq = q.t.data<T>();
  const T* pk = k.t.data<T>();
  const T* pv = v.t.data<T>();
  const T* pm = mask ? mask->t.data<T>() : nullptr;
  T* po = out.data<T>();
  const std::int64_t ldo = out.strides()[2];
  const Layout kt = transposed(k.lay);
  // Tiny problems (tests) run on one thread: a parallel region would cost more than the work.
  const bool par = B * H * Nq * Nk * std::max(Dh, Dv) >= kParallelGrain;
#pragma omp parallel if (par)
  {
    // Per-thread scratch: S/P when P is not kept, and the dropped Pd.
    std::vector<T> s_buf(probs ? 0 : static_cast<std::size_t>(Nq * Nk));
    std::vector<T> d_buf(drop ? static_cast<std::size_t>(Nq * Nk) : 0);
#pragma omp for schedule(dynamic, 8)
    for (std::int64_t pair = 0; pair < B * H; ++pair) {
      const std::int64_t b = pair / H, h = pair % H;
      T* S = probs ? probs + pair * Nq * Nk : s_buf.data();
      blas::gemm(q.lay.trans, kt.trans, Nq, Nk, Dh, scale, pq + q.offset(b, h), q.lay.ld,
                 pk + k.offset(b, h), kt.ld, T(0), S, Nk);
      for (std::int64_t i = 0; i < Nq; ++i) {
        T* row = S + i * Nk;
        if (pm) {
          const T* mrow = pm + b * mask->strides[0] + h * mask->strides[1] + i * mask->strides[2];
          const std::int64_t mj = mask->strides[3];
          if (mask->is_bool) {
            for (std::int64_t j = 0; j < Nk; ++j)
              if (mrow[j * mj] == T(0)) row[j] = -std::numeric_limits<T>::infinity();
          } else {
            for (std::int64_t j = 0; j < Nk; ++j) row[j] += mrow[j * mj];
          }
        }
        const T m = fast::max(row, Nk);
        if (m == -std::numeric_limits<T>::infinity()) {
          std::fill(row, row + Nk, T(0));  // a fully masked row attends to nothing
          continue;
        }
        const T inv = T(1) / fast::exp_shifted(row, m, row, Nk);
        for (std::int64_t j = 0; j < Nk; ++j) row[j] *= inv;
      }
      const T* Pd = S;
      if (drop) {
        const std::uint8_t* keep = drop->keep.data() + pair * Nq * Nk;
        const T ds = static_cast<T>(drop->scale);
        for (std::int64_t e = 0; e < Nq * Nk; ++e) d_buf[e] = keep[e] ? S[e] * ds : T(0);
        Pd = d_buf.data();
      }
      blas::gemm(CblasNoTrans, v.lay.trans, Nq, Dv, Nk, T(1), Pd, Nk, pv + v.offset(b, h), v.lay.ld,
                 T(0), po + b * out.strides()[0] + h * out.strides()[1], ldo);
    }
  }
}

template <typename T>
void attention_backward(const Tensor& g, const Operand& q, const Operand& k, const Operand& v,
                        const DropoutMask* drop, T scale, const T* probs, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv) {
  const std::int64_t B = q.t.shape()[0], H = q.t.shape()[1], Nq = q.t.shape()[2],
                     Dh = q.t.shape()[3], Nk = k.t.shape()[2], Dv = v.t.shape()[3];
  const Operand go = operand(g);
  const T* pg = go.t.data<T>();
  const T* pq = q.t.data<T>();
  const T* pk = k.t.data<T>();
  const T* pv = v.t.data<T>();
  const Layout vt = transposed(v.lay);
  auto out_ptr = [](const Tensor& t, std::int64_t b, std::int64_t h) {
    return t.defined() ? t.data<T>() + b * t.strides()[0] + h * t.strides()[1] : nullptr;
  };
  const bool par = B * H * Nq * Nk * std::max(Dh, Dv) >= kParallelGrain;
#pragma omp parallel if (par)
  {
    std::vector<T> dp(static_cast<std::size_t>(Nq * Nk));
    std::vector<T> pd_buf(drop && dv.defined() ? static_cast<std::size_t>(Nq * Nk) : 0);
#pragma omp for schedule(dynamic, 8)
    for (std::int64_t pair = 0; pair < B * H; ++pair) {
      const std::int64_t b = pair / H, h = pair % H;
      const T* P = probs + pair * Nq * Nk;
      const T* dO = pg + go.offset(b, h);
      const std::uint8_t* keep = drop ? drop->keep.data() + pair * Nq * Nk : nullptr;
      const T ds = drop ? static_cast<T>(drop->scale) : T(1);
      if (dv.defined()) {
        // dV (Nk, Dv) = Pd^T dO with Pd the dropped probabilities used by the forward.
        const T* Pd = P;
        if (keep) {
          for (std::int64_t e = 0; e < Nq * Nk; ++e) pd_buf[e] = keep[e] ? P[e] * ds : T(0);
          Pd = pd_buf.data();
        }
        blas::gemm(CblasTrans, go.lay.trans, Nk, Dv, Nq, T(1), Pd, Nk, dO, go.lay.ld, T(0),
                   out_ptr(dv, b, h), dv.strides()[2]);
      }
      if (!dq.defined() && !dk.defined()) continue;
      // dP (Nq, Nk) = dO v^T, through the dropout mask.
      blas::gemm(go.lay.trans, vt.trans, Nq, Nk, Dv, T(1), dO, go.lay.ld, pv + v.offset(b, h),
                 vt.ld, T(0), dp.data(), Nk);
      for (std::int64_t i = 0; i < Nq; ++i) {
        T* r = dp.data() + i * Nk;
        const T* p = P + i * Nk;
        if (keep)
          for (std::int64_t j = 0; j < Nk; ++j) r[j] = keep[i * Nk + j] ? r[j] * ds : T(0);
        const T dot = fast::dot(r, p, Nk);
        for (std::int64_t j = 0; j < Nk; ++j) r[j] = p[j] * (r[j] - dot);  // dS
      }
      if (dq.defined())
        blas::gemm(CblasNoTrans, k.lay.trans, Nq, Dh, Nk, scale, dp.data(), Nk, pk + k.offset(b, h),
                   k.lay.ld, T(0), out_ptr(dq, b, h), dq.strides()[2]);
      if (dk.defined())
        blas::gemm(CblasTrans, q.lay.trans, Nk, Dh, Nq, scale, dp.data(), Nk, pq + q.offset(b, h),
                   q.lay.ld, T(0), out_ptr(dk, b, h), dk.strides()[2]);
    }
  }
}

// ---- bfloat16 (autocast) kernels: batched engine GEMMs, float32 row passes between them ----

// The engine's strides of a (B, H, rows, cols) operand read through `o` (transposed when
// `transpose`).
gemm::MatrixStrides bf16_strides(const Operand& o, bool transpose = false) {
  const bool row_major = (o.lay.trans == CblasNoTrans) != transpose;
  return row_major ? gemm::MatrixStrides{o.sb, o.sh, o.lay.ld, 1}
                   : gemm::MatrixStrides{o.sb, o.sh, 1, o.lay.ld};
}
// A contiguous (B, H, R, C) matrix stack, or its transpose.
gemm::MatrixStrides dense_strides(std::int64_t H, std::int64_t R, std::int64_t C,
                                  bool transpose = false) {
  return transpose ? gemm::MatrixStrides{H * R * C, R * C, 1, C}
                   : gemm::MatrixStrides{H * R * C, R * C, C, 1};
}
// Strides of a (B, H, R, C) result view (the gradients and the output are (B, N, H, D) memory).
gemm::MatrixStrides view_strides(const Tensor& t) {
  return {t.strides()[0], t.strides()[1], t.strides()[2], 1};
}
gemm::GemmDesc batched(std::int64_t B, std::int64_t H, std::int64_t M, std::int64_t N,
                       std::int64_t K, gemm::MatrixStrides a, gemm::MatrixStrides b,
                       gemm::MatrixStrides c, float alpha = 1.0f) {
  gemm::GemmDesc d;
  d.batch0 = B, d.batch1 = H, d.M = M, d.N = N, d.K = K;
  d.a = a, d.b = b, d.c = c, d.alpha = alpha;
  return d;
}

// P (B, H, Nq, Nk) = softmax(scale q k^T + mask) in bfloat16, and O = dropout(P) v into `out`
// (bfloat16, rounded once from the float32 accumulation). `probs` is P, kept for backward or
// returned.
void attention_forward_bf16(const Operand& q, const Operand& k, const Operand& v,
                            const MaskView* mask, const DropoutMask* drop, float scale,
                            const Tensor& probs, const Tensor& out) {
  const std::int64_t B = q.t.shape()[0], H = q.t.shape()[1], Nq = q.t.shape()[2],
                     Dh = q.t.shape()[3], Nk = k.t.shape()[2], Dv = v.t.shape()[3];
  Tensor S = empty({B, H, Nq, Nk}, DType::Float32);
  gemm::gemm_bf16(batched(B, H, Nq, Nk, Dh, bf16_strides(q), bf16_strides(k, true),
                          dense_strides(H, Nq, Nk), scale),
                  q.t.data<bfloat16>(), k.t.data<bfloat16>(), S.data<float>());
  Tensor Pd = drop ? empty({B, H, Nq, Nk}, DType::BFloat16) : probs;
  float* ps = S.data<float>();
  bfloat16* pp = probs.data<bfloat16>();
  bfloat16* pd = Pd.data<bfloat16>();
  const float* pm = mask ? mask->t.data<float>() : nullptr;
  const std::int64_t rows = B * H * Nq;
  parallel_for(
      rows, std::max<std::int64_t>(1, kParallelGrain / Nk), [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
          float* row = ps + r * Nk;
          if (pm) {
            const std::int64_t i = r % Nq, h = (r / Nq) % H, b = r / (Nq * H);
            const float* mrow =
                pm + b * mask->strides[0] + h * mask->strides[1] + i * mask->strides[2];
            const std::int64_t mj = mask->strides[3];
            for (std::int64_t j = 0; j < Nk; ++j) {
              if (mask->is_bool && mrow[j * mj] == 0.0f)
                row[j] = -std::numeric_limits<float>::infinity();
              if (!mask->is_bool) row[j] += mrow[j * mj];
            }
          }
          const float m = fast::max(row, Nk);
          if (m == -std::numeric_limits<float>::infinity()) {
            std::fill(row, row + Nk, 0.0f);  // a fully masked row attends to nothing
          } else {
            const float inv = 1.0f / fast::exp_shifted(row, m, row, Nk);
            for (std::int64_t j = 0; j < Nk; ++j) row[j] *= inv;
          }
          float_to_bfloat16(row, pp + r * Nk, Nk);
          if (drop) {
            const std::uint8_t* keep = drop->keep.data() + r * Nk;
            const auto ds = static_cast<float>(drop->scale);
            for (std::int64_t j = 0; j < Nk; ++j)
              pd[r * Nk + j] = bfloat16(keep[j] ? static_cast<float>(pp[r * Nk + j]) * ds : 0.0f);
          }
        }
      });
  gemm::GemmDesc pv =
      batched(B, H, Nq, Dv, Nk, dense_strides(H, Nq, Nk), bf16_strides(v), view_strides(out));
  pv.c_bf16 = true;
  gemm::gemm_bf16(pv, pd, v.t.data<bfloat16>(), out.data<bfloat16>());
}

// The backward of attention_forward_bf16 from the saved bfloat16 q, k, v and P: dO and dS are
// rounded to bfloat16 for the products, dP and the softmax gradient are float32.
void attention_backward_bf16(const Tensor& g, const Operand& q, const Operand& k, const Operand& v,
                             const DropoutMask* drop, float scale, const Tensor& probs,
                             const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const std::int64_t B = q.t.shape()[0], H = q.t.shape()[1], Nq = q.t.shape()[2],
                     Dh = q.t.shape()[3], Nk = k.t.shape()[2], Dv = v.t.shape()[3];
  const Operand go = operand(copy_contiguous(g, DType::BFloat16));
  const bfloat16* P = probs.data<bfloat16>();
  const auto ds = drop ? static_cast<float>(drop->scale) : 1.0f;
  if (dv.defined()) {
    // dV (Nk, Dv) = Pd^T dO with Pd the dropped probabilities the forward multiplied by.
    Tensor Pd = probs;
    if (drop) {
      Pd = empty(probs.shape(), DType::BFloat16);
      bfloat16* pd = Pd.data<bfloat16>();
      parallel_for(Pd.numel(), kParallelGrain, [&](std::int64_t e0, std::int64_t e1) {
        for (std::int64_t e = e0; e < e1; ++e)
          pd[e] = bfloat16(drop->keep[e] ? static_cast<float>(P[e]) * ds : 0.0f);
      });
    }
    gemm::gemm_bf16(batched(B, H, Nk, Dv, Nq, dense_strides(H, Nq, Nk, true), bf16_strides(go),
                            view_strides(dv)),
                    Pd.data<bfloat16>(), go.t.data<bfloat16>(), dv.data<float>());
  }
  if (!dq.defined() && !dk.defined()) return;
  // dP (Nq, Nk) = dO v^T, then dS = P * (dP - rowsum(dP * P)) through the dropout mask.
  Tensor dP = empty({B, H, Nq, Nk}, DType::Float32);
  gemm::gemm_bf16(
      batched(B, H, Nq, Nk, Dv, bf16_strides(go), bf16_strides(v, true), dense_strides(H, Nq, Nk)),
      go.t.data<bfloat16>(), v.t.data<bfloat16>(), dP.data<float>());
  Tensor dS = empty({B, H, Nq, Nk}, DType::BFloat16);
  float* pdp = dP.data<float>();
  bfloat16* pds = dS.data<bfloat16>();
  parallel_for(B * H * Nq, std::max<std::int64_t>(1, kParallelGrain / Nk),
               [&](std::int64_t r0, std::int64_t r1) {
                 std::vector<float> p(static_cast<std::size_t>(Nk));
                 for (std::int64_t r = r0; r < r1; ++r) {
                   float* row = pdp + r * Nk;
                   bfloat16_to_float(P + r * Nk, p.data(), Nk);
                   if (drop) {
                     const std::uint8_t* keep = drop->keep.data() + r * Nk;
                     for (std::int64_t j = 0; j < Nk; ++j) row[j] = keep[j] ? row[j] * ds : 0.0f;
                   }
                   const float dot = fast::dot(row, p.data(), Nk);
                   for (std::int64_t j = 0; j < Nk; ++j) row[j] = p[j] * (row[j] - dot);
                   float_to_bfloat16(row, pds + r * Nk, Nk);
                 }
               });
  if (dq.defined())
    gemm::gemm_bf16(batched(B, H, Nq, Dh, Nk, dense_strides(H, Nq, Nk), bf16_strides(k),
                            view_strides(dq), scale),
                    pds, k.t.data<bfloat16>(), dq.data<float>());
  if (dk.defined())
    gemm::gemm_bf16(batched(B, H, Nk, Dh, Nq, dense_strides(H, Nq, Nk, true), bf16_strides(q),
                            view_strides(dk), scale),
                    pds, q.t.data<bfloat16>(), dk.data<float>());
}

}  // namespace

namespace {

// Forward of both entry points: checks, dropout mask, the fused kernel. `inputs` are what the
// graph node is recorded on (q, k, v, or the packed qkv); `make_grads` allocates the gradient
// buffers and returns (dq, dk, dv views into them, the gradients of `inputs`).
using GradBuffers = std::pair<std::array<Tensor, 3>, std::vector<Tensor>>;
using MakeGrads =
    std::function<GradBuffers(const Node&, std::int64_t B, std::int64_t H, std::int64_t Nq,
                              std::int64_t Nk, std::int64_t Dh, std::int64_t Dv, DType dt)>;

AttentionResult attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                          const Tensor& mask, bool mask_is_bool, double dropout_p,
                          std::optional<double> scale_opt, bool return_probs, Generator& gen,
                          const std::vector<Tensor>& inputs, MakeGrads make_grads) {
  const char* op = "scaled_dot_product_attention";
  const bool shapes_ok = q_in.dim() == 4 && k_in.dim() == 4 && v_in.dim() == 4 &&
                         k_in.shape()[0] == q_in.shape()[0] && v_in.shape()[0] == q_in.shape()[0] &&
                         k_in.shape()[1] == q_in.shape()[1] && v_in.shape()[1] == q_in.shape()[1] &&
                         k_in.shape()[3] == q_in.shape()[3] && v_in.shape()[2] == k_in.shape()[2];
  PW_CHECK(shapes_ok, "[{}] expected q (B,H,Nq,Dh), k (B,H,Nk,Dh), v (B,H,Nk,Dv), got {}, {}, {}",
           op, shape_str(q_in.shape()), shape_str(k_in.shape()), shape_str(v_in.shape()));
  // bfloat16 q, k, v (autocast) compute in float32 between the products and give float32.
  const bool bf16 = kernels::common_dtype(op, {q_in, k_in, v_in}) == DType::BFloat16;
  const DType dt = bf16 ? DType::Float32 : q_in.dtype();
  PW_CHECK(dropout_p >= 0 && dropout_p < 1, "[{}] dropout_p must be in [0, 1), got {}", op,
           dropout_p);
  const std::int64_t B = q_in.shape()[0], H = q_in.shape()[1], Nq = q_in.shape()[2],
                     Dh = q_in.shape()[3], Nk = k_in.shape()[2], Dv = v_in.shape()[3];
  PW_CHECK(B > 0 && H > 0 && Nq > 0 && Nk > 0 && Dh > 0 && Dv > 0, "[{}] empty inputs {}, {}, {}",
           op, shape_str(q_in.shape()), shape_str(k_in.shape()), shape_str(v_in.shape()));
  const double scale = scale_opt ? *scale_opt : 1.0 / std::sqrt(static_cast<double>(Dh));

  MaskView mv;
  if (mask.defined()) {
    const Shape full{B, H, Nq, Nk};
    bool ok = mask.dim() <= 4;
    for (std::int64_t i = 0; ok && i < mask.dim(); ++i) {
      const std::int64_t m = mask.shape()[mask.dim() - 1 - i];
      ok = m == 1 || m == full[3 - i];
    }
    PW_CHECK(ok, "[{}] mask {} does not broadcast to (B,H,Nq,Nk) = {}", op, shape_str(mask.shape()),
             shape_str(full));
    PW_CHECK(mask.dtype() == dt, "[{}] mask dtype {} differs from q's {}", op,
             dtype_name(mask.dtype()), dtype_name(dt));
    mv.t = mask;
    mv.strides = kernels::broadcast_strides(mask, full);
    mv.is_bool = mask_is_bool;
  }

  // The dropout mask is drawn before the parallel loop (bernoulli_keep: in sequence from the
  // generator, or per sample in a SampleStreams scope), so it does not depend on the thread count.
  std::shared_ptr<DropoutMask> drop;
  if (dropout_p > 0) {
    drop = std::make_shared<DropoutMask>();
    drop->keep = bernoulli_keep(op, B, H * Nq * Nk, dropout_p, gen);
    drop->scale = 1.0 / (1.0 - dropout_p);
  }

  const Operand q = operand(q_in), k = operand(k_in), v = operand(v_in);
  const bool grad = needs_grad(inputs);
  // Under autocast the output is bfloat16 (as PyTorch's): the projection that follows reads it
  // without a cast.
  Tensor out = empty_bnhd(B, H, Nq, Dv, bf16 ? DType::BFloat16 : dt);
  Tensor probs;
  if (bf16) {
    probs = empty({B, H, Nq, Nk}, DType::BFloat16);
    attention_forward_bf16(q, k, v, mask.defined() ? &mv : nullptr, drop.get(),
                           static_cast<float>(scale), probs, out);
  } else {
    probs = grad || return_probs ? empty({B, H, Nq, Nk}, dt) : Tensor();
    PW_DISPATCH(dt, [&] {
      attention_forward<scalar_t>(q, k, v, mask.defined() ? &mv : nullptr, drop.get(),
                                  static_cast<scalar_t>(scale),
                                  probs.defined() ? probs.data<scalar_t>() : nullptr, out);
    });
  }
  if (grad) {
    // The operand's layout is kept; its tensor is held only through SavedTensor (detached).
    auto saved = [](const Operand& o) {
      Operand layout_only = o;
      layout_only.t = Tensor();
      return std::make_pair(SavedTensor(o.t), layout_only);
    };
    record(op, out, inputs,
           [sq = saved(q), sk = saved(k), sv = saved(v), sp = SavedTensor(probs), drop, scale,
            make_grads = std::move(make_grads)](const Tensor& g,
                                                const Node& n) -> std::vector<Tensor> {
             // Re-fetch each operand through SavedTensor so in-place changes are caught.
             auto get = [](const std::pair<SavedTensor, Operand>& s) {
               Operand o = s.second;
               o.t = s.first.get();
               return o;
             };
             const Operand q = get(sq), k = get(sk), v = get(sv);
             const Tensor P = sp.get();
             const std::int64_t B = q.t.shape()[0], H = q.t.shape()[1], Nq = q.t.shape()[2],
                                Dh = q.t.shape()[3], Nk = k.t.shape()[2], Dv = v.t.shape()[3];
             if (q.t.dtype() == DType::BFloat16) {
               auto [views, grads] = make_grads(n, B, H, Nq, Nk, Dh, Dv, DType::Float32);
               const auto& [dq, dk, dv] = views;
               attention_backward_bf16(g, q, k, v, drop.get(), static_cast<float>(scale), P, dq, dk,
                                       dv);
               return grads;
             }
             const DType dt = q.t.dtype();
             auto [views, grads] = make_grads(n, B, H, Nq, Nk, Dh, Dv, dt);
             // Plain references: the lambda below captures them (clang 14 cannot capture
             // structured bindings).
             const Tensor &dq = views[0], &dk = views[1], &dv = views[2];
             PW_DISPATCH(dt, [&] {
               attention_backward<scalar_t>(g, q, k, v, drop.get(), static_cast<scalar_t>(scale),
                                            P.data<scalar_t>(), dq, dk, dv);
             });
             return grads;
           });
  }
  if (!return_probs) return {out, Tensor()};
  return {out, probs.dtype() == dt ? probs : copy_contiguous(probs, dt)};
}

}  // namespace

AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& mask, bool mask_is_bool,
                                             double dropout_p, std::optional<double> scale,
                                             bool return_probs, Generator& gen) {
  const bool cast = Autocast::is_enabled() && q.dtype() == DType::Float32 &&
                    k.dtype() == DType::Float32 && v.dtype() == DType::Float32;
  auto op = [cast](const Tensor& t) { return cast ? autocast_bf16(t) : t; };
  return attention(op(q), op(k), op(v), mask, mask_is_bool, dropout_p, scale, return_probs, gen,
                   {q, k, v},
                   [](const Node& n, std::int64_t B, std::int64_t H, std::int64_t Nq,
                      std::int64_t Nk, std::int64_t Dh, std::int64_t Dv, DType dt) -> GradBuffers {
                     Tensor dq = n.needs_input_grad(0) ? empty_bnhd(B, H, Nq, Dh, dt) : Tensor();
                     Tensor dk = n.needs_input_grad(1) ? empty_bnhd(B, H, Nk, Dh, dt) : Tensor();
                     Tensor dv = n.needs_input_grad(2) ? empty_bnhd(B, H, Nk, Dv, dt) : Tensor();
                     return {{dq, dk, dv}, {dq, dk, dv}};
                   });
}

AttentionResult scaled_dot_product_attention_packed(const Tensor& qkv, std::int64_t heads,
                                                    const Tensor& mask, bool mask_is_bool,
                                                    double dropout_p, std::optional<double> scale,
                                                    bool return_probs, Generator& gen) {
  PW_CHECK(qkv.dim() == 3 && heads > 0 && qkv.shape()[2] % (3 * heads) == 0,
           "[scaled_dot_product_attention_packed] expected qkv (B, N, 3*H*Dh) with H = {}, got {}",
           heads, shape_str(qkv.shape()));
  const Tensor x = qkv.is_contiguous() ? qkv : copy_contiguous(qkv);
  const std::int64_t B = x.shape()[0], N = x.shape()[1], W = x.shape()[2], H = heads,
                     Dh = W / (3 * H);
  // q, k and v as (B, H, N, Dh) views of the packed rows: no copies, not recorded.
  auto part = [B, N, W, H, Dh](const Tensor& t, std::int64_t i) {
    return make_view(t, {B, H, N, Dh}, {N * W, Dh, W, 1}, t.offset() + i * H * Dh);
  };
  std::array<Tensor, 3> qkv_parts{part(x, 0), part(x, 1), part(x, 2)};
  if (Autocast::is_enabled() && x.dtype() == DType::Float32) {
    // One cast into (3, B, N, H*Dh) bfloat16: q, k and v each dense (B, N, H, Dh) memory, which
    // the engine's fast kernels read as (B, H, N, Dh) in place (packed rows would need copies).
    const std::int64_t HD = H * Dh;
    Tensor xb = empty({3, B, N, HD}, DType::BFloat16);
    copy_into(make_view(xb, {B, N, 3, HD}, {N * HD, HD, B * N * HD, 1}, 0),
              make_view(x, {B, N, 3, HD}, {N * W, W, HD, 1}, x.offset()));
    for (std::int64_t i = 0; i < 3; ++i)
      qkv_parts[i] = make_view(xb, {B, H, N, Dh}, {N * HD, Dh, HD, 1}, i * B * N * HD);
  }
  return attention(
      qkv_parts[0], qkv_parts[1], qkv_parts[2], mask, mask_is_bool, dropout_p, scale, return_probs,
      gen, {qkv},
      [part, shape = x.shape()](const Node&, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                                std::int64_t, std::int64_t, DType dt) -> GradBuffers {
        // The three gradients land in one buffer laid out like the input.
        Tensor dqkv = empty(shape, dt);
        return {{part(dqkv, 0), part(dqkv, 1), part(dqkv, 2)}, {dqkv}};
      });
}

}  // namespace pw
