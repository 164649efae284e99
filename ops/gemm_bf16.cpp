// The bfloat16 GEMM engine on oneDNN's matmul primitive (oneDNN 2.x). Each descriptor becomes
// one primitive over 4-D memory descriptors (batch0, batch1, rows, cols) that carry the caller's
// strides; primitives are created once per descriptor (and thread count) and cached, and memory
// objects wrap the caller's pointers on every call.
//
// Two oneDNN 2.6 behaviours shape this file:
// - Its matmul computes dst = eltwise(scale * (A B + bias) + dst_old): the bias is added before
//   the output scale. The contract here is alpha * A B + bias, so when alpha != 1 and there is a
//   bias, the bias moves from the matmul's bias argument to a binary-add post-op, which comes
//   after the scale.
// - Its fast kernels (brgemm, AMX or AVX512) take only dense layouts: every operand must fill
//   its (batch0, batch1, rows, cols) box without gaps, though its dims may lie in memory in any
//   order (q read in place from a packed (B, N, 3 D) qkv buffer has gaps between rows; so does a
//   padded leading dimension; a dense (B, N, H, Dh) read as (B, H, N, Dh) is fine), and C must
//   be row-major. Other layouts fall back to gemm:jit, 2-4x slower on the small batched
//   products of attention, and a transposed C to ref:any, 1000x slower. So when a dense copy of
//   the offending operands reaches a brgemm kernel, the engine packs them into per-thread
//   scratch buffers (and C back out of one) around the call: the copies cost less than the
//   slower kernel.
// Where oneDNN has no bf16 matmul at all (below AVX512), gemm_bf16_sgemm runs instead.
#include "ops/gemm_bf16.h"

#include <omp.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <array>
#include <bit>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "ops/gemm_bf16_layout.h"

namespace pw::gemm {
namespace {

using detail::desc_str;
using detail::Layout;
using dnnl::memory;

// ---- choosing the primitive ----

// Below this many multiply-adds (over the whole batch) a product runs on one thread: oneDNN
// would otherwise fork the whole OpenMP team for microseconds of work, and wait at its barrier
// for a thread the OS has given to someone else.
constexpr std::int64_t kSerialWork = std::int64_t{1} << 20;

int threads_for(const GemmDesc& d) {
  return d.batch0 * d.batch1 * d.M * d.N * d.K < kSerialWork ? 1 : omp_get_max_threads();
}

// Sets the OpenMP thread count for a scope (oneDNN reads it when it creates a primitive, and its
// gemm when it runs), when it differs.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : previous_(omp_get_max_threads()) {
    if (n != previous_) omp_set_num_threads(n);
  }
  ~ThreadCount() {
    if (omp_get_max_threads() != previous_) omp_set_num_threads(previous_);
  }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int previous_;
};

// Everything that shapes a primitive: the whole descriptor and the thread count it runs on
// (oneDNN fixes its work split when the primitive is created).
using Key = std::array<std::int64_t, 20>;

Key key_of(const GemmDesc& d) {
  Key k{};
  std::size_t i = 0;
  for (std::int64_t v : {d.batch0, d.batch1, d.M, d.N, d.K}) k[i++] = v;
  for (const MatrixStrides* m : {&d.a, &d.b, &d.c})
    for (std::int64_t v : {m->batch0, m->batch1, m->row, m->col}) k[i++] = v;
  k[i++] = std::bit_cast<std::uint32_t>(d.alpha);
  k[i++] = (d.accumulate ? 1 : 0) | (d.c_bf16 ? 2 : 0) | (d.has_bias ? 4 : 0) | (d.gelu ? 8 : 0);
  k[i++] = threads_for(d);
  return k;
}

struct KeyHash {
  std::size_t operator()(const Key& k) const {
    std::uint64_t h = 0;
    for (std::int64_t v : k)
      h ^= static_cast<std::uint64_t>(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return static_cast<std::size_t>(h);
  }
};

// How one descriptor runs: the primitive, the layouts it reads and writes, and which operands
// (A, B, C) are packed into dense scratch first.
struct Plan {
  dnnl::matmul::primitive_desc pd;
  std::array<Layout, 3> user, used;
  std::array<bool, 3> packed{false, false, false};
  bool onednn = true;  // false: oneDNN has no bf16 matmul here, run gemm_bf16_sgemm instead
  memory::desc bias;
  bool bias_post_op = false;  // bias passed to a binary-add post-op at this index
  int bias_post_op_index = 0;
  std::string implementation;
};

memory::desc md_of(const Layout& l, memory::data_type dt) {
  return memory::desc(l.dims, dt, l.strides);
}

dnnl::matmul::primitive_desc make_pd(const GemmDesc& d, const Plan& p, const dnnl::engine& engine) {
  using dt = memory::data_type;
  dnnl::primitive_attr attr;
  if (d.alpha != 1.0f) attr.set_output_scales(0, {d.alpha});
  dnnl::post_ops ops;
  if (d.accumulate) ops.append_sum(1.0f);
  if (p.bias_post_op) ops.append_binary(dnnl::algorithm::binary_add, p.bias);
  if (d.gelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
  attr.set_post_ops(ops);
  const auto a = md_of(p.used[0], dt::bf16), b = md_of(p.used[1], dt::bf16),
             c = md_of(p.used[2], d.c_bf16 ? dt::bf16 : dt::f32);
  const auto desc = d.has_bias && !p.bias_post_op ? dnnl::matmul::desc(a, b, p.bias, c)
                                                  : dnnl::matmul::desc(a, b, c);
  return dnnl::matmul::primitive_desc(desc, attr, engine);
}

// brgemm kernels first, then oneDNN's gemm, then the reference loops.
int speed_rank(const std::string& impl) {
  if (impl.rfind("brg", 0) == 0) return 2;
  if (impl.rfind("gemm", 0) == 0) return 1;
  return 0;
}

// The first plan that reaches a brgemm kernel, else the fastest: the caller's layouts as they
// are; then with the gaps squeezed out of A and B (dims kept in their memory order, which
// oneDNN accepts in any permutation) and C row-major; then every operand in canonical order.
Plan plan_for(const GemmDesc& d, const dnnl::engine& engine) {
  Plan p;
  p.user = {detail::layout_of(d, d.M, d.K, d.a), detail::layout_of(d, d.K, d.N, d.b),
            detail::layout_of(d, d.M, d.N, d.c)};
  p.bias = memory::desc({1, 1, 1, d.N}, memory::data_type::f32, {d.N, d.N, d.N, 1});
  p.bias_post_op = d.has_bias && d.alpha != 1.0f;
  p.bias_post_op_index = d.accumulate ? 1 : 0;
  std::array<std::array<Layout, 3>, 3> candidates{p.user, p.user, p.user};
  for (std::size_t i = 0; i < 2; ++i) {
    if (!detail::is_dense(p.user[i])) candidates[1][i] = detail::compact_layout(p.user[i]);
    candidates[2][i] = detail::dense_layout(p.user[i], true);
  }
  if (!detail::is_dense(p.user[2]) || !p.user[2].row_major)
    candidates[1][2] = detail::dense_layout(p.user[2], false);
  candidates[2][2] = detail::dense_layout(p.user[2], false);
  auto same = [](const std::array<Layout, 3>& x, const std::array<Layout, 3>& y) {
    return detail::same_layout(x[0], y[0]) && detail::same_layout(x[1], y[1]) &&
           detail::same_layout(x[2], y[2]);
  };
  int best_rank = -1;  // -1: no oneDNN matmul yet
  for (std::size_t c = 0; c < candidates.size() && best_rank < 2; ++c) {
    if (c > 0 && same(candidates[c], candidates[c - 1])) continue;
    if (c > 1 && same(candidates[c], candidates[0])) continue;
    Plan q = p;
    q.used = candidates[c];
    for (std::size_t i = 0; i < 3; ++i) q.packed[i] = !detail::same_layout(q.used[i], q.user[i]);
    try {
      q.pd = make_pd(d, q, engine);
    } catch (const dnnl::error&) {
      continue;
    }
    const int rank = speed_rank(q.pd.impl_info_str());
    if (rank > best_rank) {
      best_rank = rank;
      p = std::move(q);
    }
  }
  if (best_rank < 0) {
    // oneDNN 2.6 has no bf16 matmul at all below avx512_core (e.g. on AVX2-only CPUs).
    p.onednn = false;
    p.implementation = "sgemm:openblas (no oneDNN bf16 matmul at " + onednn_cpu_isa() + ")";
    return p;
  }
  p.implementation = p.pd.impl_info_str();
  if (p.packed[0] || p.packed[1] || p.packed[2]) {
    std::string which;
    for (std::size_t i = 0; i < 3; ++i)
      if (p.packed[i]) which += std::string(which.empty() ? "" : ",") + "ABC"[i];
    p.implementation += " (packs " + which + ")";
  }
  return p;
}

// ---- the engine, the stream and the primitive cache ----

struct Primitive {
  Plan plan;
  dnnl::matmul matmul;
  int threads = 1;
};

struct Runtime {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mutex;
  std::unordered_map<Key, std::shared_ptr<const Primitive>, KeyHash> cache;
};

// Created on first use and never destroyed: oneDNN objects must not outlive the OpenMP runtime
// at exit, and a static's destructor could run after it.
Runtime& runtime() {
  static Runtime* r = new Runtime;
  return *r;
}

// More cached shapes than a training run ever uses means shapes vary freely; start over.
constexpr std::size_t kMaxCachedPrimitives = 512;

std::shared_ptr<const Primitive> primitive_for(const GemmDesc& d) {
  Runtime& rt = runtime();
  const Key key = key_of(d);
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (auto it = rt.cache.find(key); it != rt.cache.end()) return it->second;
  auto p = std::make_shared<Primitive>();
  p->threads = threads_for(d);
  ThreadCount threads(p->threads);
  p->plan = plan_for(d, rt.engine);
  if (p->plan.onednn) {
    try {
      p->matmul = dnnl::matmul(p->plan.pd);
    } catch (const dnnl::error& e) {
      fail("[gemm_bf16] oneDNN cannot create a matmul for {}: {}", desc_str(d), e.what());
    }
  }
  if (rt.cache.size() >= kMaxCachedPrimitives) rt.cache.clear();
  rt.cache.emplace(key, p);
  return p;
}

// C's box copied between the caller's layout and the dense one, in C's element type.
void copy_c(const GemmDesc& d, const void* src, const Layout& from, void* dst, const Layout& to) {
  if (d.c_bf16)
    detail::copy_box(static_cast<const bfloat16*>(src), from, static_cast<bfloat16*>(dst), to);
  else
    detail::copy_box(static_cast<const float*>(src), from, static_cast<float*>(dst), to);
}

}  // namespace

void gemm_bf16(const GemmDesc& d, const bfloat16* A, const bfloat16* B, void* C,
               const float* bias) {
  validate(d);
  detail::check_pointers(d, A, B, C, bias);
  const auto prim = primitive_for(d);
  const Plan& p = prim->plan;
  ThreadCount threads(prim->threads);
  if (!p.onednn) {
    gemm_bf16_sgemm(d, A, B, C, bias);
    return;
  }
  Runtime& rt = runtime();
  thread_local std::array<detail::Scratch, 3> scratch;
  // oneDNN takes non-const handles; it only reads A, B and the bias.
  void* a = const_cast<bfloat16*>(A);
  void* b = const_cast<bfloat16*>(B);
  void* c = C;
  if (p.packed[0]) {
    bfloat16* packed = scratch[0].get<bfloat16>(numel_of(p.used[0]));
    detail::copy_box(A, p.user[0], packed, p.used[0]);
    a = packed;
  }
  if (p.packed[1]) {
    bfloat16* packed = scratch[1].get<bfloat16>(numel_of(p.used[1]));
    detail::copy_box(B, p.user[1], packed, p.used[1]);
    b = packed;
  }
  if (p.packed[2]) {
    // Room for float32 holds bfloat16 as well.
    c = scratch[2].get<float>(numel_of(p.used[2]));
    if (d.accumulate) copy_c(d, C, p.user[2], c, p.used[2]);
  }
  try {
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, memory(p.pd.src_desc(), rt.engine, a)},
        {DNNL_ARG_WEIGHTS, memory(p.pd.weights_desc(), rt.engine, b)},
        {DNNL_ARG_DST, memory(p.pd.dst_desc(), rt.engine, c)}};
    if (d.has_bias) {
      const int arg = p.bias_post_op
                          ? DNNL_ARG_ATTR_MULTIPLE_POST_OP(p.bias_post_op_index) | DNNL_ARG_SRC_1
                          : DNNL_ARG_BIAS;
      args.emplace(arg, memory(p.bias, rt.engine, const_cast<float*>(bias)));
    }
    prim->matmul.execute(rt.stream, args);
    rt.stream.wait();
  } catch (const dnnl::error& e) {
    fail("[gemm_bf16] oneDNN matmul failed for {}: {}", desc_str(d), e.what());
  }
  if (p.packed[2]) copy_c(d, c, p.used[2], C, p.user[2]);
}

std::string gemm_bf16_implementation(const GemmDesc& d) {
  validate(d);
  return primitive_for(d)->plan.implementation;
}

std::string gemm_bf16_implementation() {
  // ViT-on-CIFAR shapes (B 128 images, N 65 tokens, D 256, H 4 heads of Dh 64): the linear
  // layer's three GEMMs and attention's two products read in place from the packed qkv buffer.
  constexpr std::int64_t B = 128, N = 65, D = 256, H = 4, Dh = 64, R = B * N, W = 3 * D;
  std::vector<std::pair<std::string, GemmDesc>> shapes;
  GemmDesc fwd{.M = R, .N = W, .K = D, .a = {0, 0, D, 1}, .b = {0, 0, 1, D}, .c = {0, 0, W, 1}};
  fwd.has_bias = true;
  shapes.emplace_back("linear", fwd);
  shapes.emplace_back(
      "linear dX",
      GemmDesc{.M = R, .N = D, .K = W, .a = {0, 0, W, 1}, .b = {0, 0, D, 1}, .c = {0, 0, D, 1}});
  shapes.emplace_back(
      "linear dW",
      GemmDesc{.M = W, .N = D, .K = R, .a = {0, 0, 1, W}, .b = {0, 0, D, 1}, .c = {0, 0, D, 1}});
  shapes.emplace_back("attention scores", GemmDesc{.batch0 = B,
                                                   .batch1 = H,
                                                   .M = N,
                                                   .N = N,
                                                   .K = Dh,
                                                   .a = {N * W, Dh, W, 1},
                                                   .b = {N * W, Dh, 1, W},
                                                   .c = {H * N * N, N * N, N, 1}});
  shapes.emplace_back("attention values", GemmDesc{.batch0 = B,
                                                   .batch1 = H,
                                                   .M = N,
                                                   .N = Dh,
                                                   .K = N,
                                                   .a = {H * N * N, N * N, N, 1},
                                                   .b = {N * W, Dh, W, 1},
                                                   .c = {N * D, Dh, D, 1}});
  // Only primitive descriptors: no kernel is generated and nothing enters the cache.
  const dnnl::engine& engine = runtime().engine;
  std::vector<std::pair<std::string, std::string>> found;
  for (const auto& [name, d] : shapes) found.emplace_back(name, plan_for(d, engine).implementation);
  // One kernel name when they all agree (packing notes aside), else each shape's.
  auto kernel = [](const std::string& impl) { return impl.substr(0, impl.find(" (")); };
  const bool same = std::all_of(found.begin(), found.end(), [&](const auto& f) {
    return kernel(f.second) == kernel(found[0].second);
  });
  if (same) return kernel(found[0].second);
  std::string r;
  for (const auto& [name, impl] : found) r += (r.empty() ? "" : ", ") + name + ": " + impl;
  return r;
}

std::string onednn_cpu_isa() {
  using isa = dnnl::cpu_isa;
  static constexpr std::pair<isa, const char*> kNames[] = {
      {isa::sse41, "sse41"},
      {isa::avx, "avx"},
      {isa::avx2, "avx2"},
      {isa::avx2_vnni, "avx2_vnni"},
      {isa::avx512_mic, "avx512_mic"},
      {isa::avx512_mic_4ops, "avx512_mic_4ops"},
      {isa::avx512_core, "avx512_core"},
      {isa::avx512_core_vnni, "avx512_core_vnni"},
      {isa::avx512_core_bf16, "avx512_core_bf16"},
      {isa::avx512_core_amx, "avx512_core_amx"}};
  const isa found = dnnl::get_effective_cpu_isa();
  for (const auto& [value, name] : kNames)
    if (value == found) return name;
  return "unknown";
}

bool cpu_has_native_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  // AMX-BF16 is CPUID leaf 7, EDX bit 22 (read directly: clang 14's __builtin_cpu_supports does
  // not know "amx-bf16"); oneDNN's ISA below says whether the OS lets us use it.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool amx_bf16 = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (edx & (1u << 22));
  const bool cpu = __builtin_cpu_supports("avx512bf16") || amx_bf16;
#else
  const bool cpu = false;
#endif
  // oneDNN's ISA levels are bit masks: every level with AVX512_BF16 holds avx512_core_bf16's bits.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return cpu && (isa & bf16) == bf16;
}

}  // namespace pw::gemm
