#include "ops/elementwise.h"

#include <cmath>
#include <functional>
#include <string>

#include "core/autograd.h"
#include "ops/broadcast.h"
#include "ops/elementwise_rules.h"
#include "ops/kernels.h"

namespace pw {
namespace kernels {

DType common_dtype(const char* op, std::initializer_list<Tensor> ts) {
  const DType dt = ts.begin()->dtype();
  bool same = true;
  for (const auto& t : ts) same = same && t.dtype() == dt;
  if (!same) {
    std::string operands;
    for (const auto& t : ts)
      operands += fmt::format("{}{} {}", operands.empty() ? "" : " vs ", shape_str(t.shape()),
                              dtype_name(t.dtype()));
    fail("[{}] dtype mismatch: {}", op, operands);
  }
  return dt;
}

void check_writable(const char* op, const Tensor& t) {
  for (std::int64_t d = 0; d < t.dim(); ++d)
    PW_CHECK(t.strides()[d] != 0 || t.shape()[d] <= 1,
             "[{}] cannot write in place into an expanded tensor of shape {} with strides {}", op,
             shape_str(t.shape()), shape_str(t.strides()));
}

}  // namespace kernels

namespace {

// Applies a binary scalar function over broadcast operands into a new tensor.
template <typename F>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  const DType dt = kernels::common_dtype(op, {a, b});
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), op), dt);
  PW_DISPATCH(dt, [&] {
    kernels::map2<scalar_t>(out, a, b, [&](scalar_t x, scalar_t y) { return f(x, y); });
  });
  return out;
}

template <typename F>
Tensor unary(const Tensor& a, F f) {
  Tensor out = empty(a.shape(), a.dtype());
  PW_DISPATCH(a.dtype(),
              [&] { kernels::map1<scalar_t>(out, a, [&](scalar_t x) { return f(x); }); });
  return out;
}

// Applies a ternary scalar function over three broadcast operands (backward rules that need
// the gradient and two saved tensors, fused into one pass).
template <typename F>
Tensor ternary(const char* op, const Tensor& a, const Tensor& b, const Tensor& c, F f) {
  const DType dt = kernels::common_dtype(op, {a, b, c});
  const Shape shape = broadcast_shapes(broadcast_shapes(a.shape(), b.shape(), op), c.shape(), op);
  Tensor out = empty(shape, dt);
  PW_DISPATCH(dt, [&] {
    kernels::map3<scalar_t>(out, a, b, c,
                            [&](scalar_t x, scalar_t y, scalar_t z) { return f(x, y, z); });
  });
  return out;
}

Tensor grad_if(const Node& node, std::size_t i, const std::function<Tensor()>& compute) {
  return node.needs_input_grad(i) ? sum_to(compute(), node.input_shapes[i]) : Tensor();
}

}  // namespace

// ---- the table of differentiable ops (ops/elementwise_rules.h) ----

namespace {

using Saved = ElementwiseSaved;

// Gradient share of `a` in maximum/minimum: 1 where a wins, 0.5 on ties, 0 where it loses.
Tensor select_share(const Tensor& a, const Tensor& b, bool is_max) {
  return binary(is_max ? "maximum_backward" : "minimum_backward", a, b, [is_max](auto x, auto y) {
    using T = decltype(x);
    if (x == y) return T(0.5);
    return (is_max ? x > y : x < y) ? T(1) : T(0);
  });
}

// NaN propagates from either side (torch.maximum); std::max alone would drop a NaN in y.
Tensor extremum(const char* name, const Tensor& a, const Tensor& b, bool is_max) {
  return binary(name, a, b, [is_max](auto x, auto y) {
    return std::isnan(x) || (is_max ? x > y : x < y) ? x : y;
  });
}

template <typename T>
T cast(double s) {
  return static_cast<T>(s);
}

// Each entry: its name, what its formulas read (saves_*), the domain its gradient is checked on,
// its forward, and d/da, d/db applied to the output's gradient. Formulas use the ops themselves,
// so that they broadcast and run on any dtype.
// clang-format off
constexpr ElementwiseOp kAdd{
    .name = "add",
    .forward = [](const Tensor& a, const Tensor& b, double) {
      return binary("add", a, b, [](auto x, auto y) { return x + y; }); },
    .grad_a = [](const Tensor& g, const Saved&) { return g; },
    .grad_b = [](const Tensor& g, const Saved&) { return g; }};
constexpr ElementwiseOp kSub{
    .name = "sub",
    .forward = [](const Tensor& a, const Tensor& b, double) {
      return binary("sub", a, b, [](auto x, auto y) { return x - y; }); },
    .grad_a = [](const Tensor& g, const Saved&) { return g; },
    .grad_b = [](const Tensor& g, const Saved&) { return neg(g); }};
constexpr ElementwiseOp kMul{
    .name = "mul", .saves_a = true, .saves_b = true,
    .forward = [](const Tensor& a, const Tensor& b, double) {
      return binary("mul", a, b, [](auto x, auto y) { return x * y; }); },
    .grad_a = [](const Tensor& g, const Saved& s) { return mul(g, s.b); },
    .grad_b = [](const Tensor& g, const Saved& s) { return mul(g, s.a); }};
constexpr ElementwiseOp kDiv{
    .name = "div", .saves_b = true, .saves_out = true, .domain = GradDomain::AwayFromZero,
    .forward = [](const Tensor& a, const Tensor& b, double) {
      return binary("div", a, b, [](auto x, auto y) { return x / y; }); },
    .grad_a = [](const Tensor& g, const Saved& s) { return div(g, s.b); },  // 1/b
    .grad_b = [](const Tensor& g, const Saved& s) {
      return neg(div(mul(g, s.out), s.b)); }};  // -(a/b)/b
// d(a^b)/da = b a^(b-1), taken as 0 where b == 0 (so 0^0 gives 0, not 0 * inf); d(a^b)/db =
// a^b log a, taken as 0 where a == 0 and b >= 0 (a^b is 0 or 1 there and PyTorch defines it
// so). Both as in PyTorch's pow_backward.
constexpr ElementwiseOp kPow{
    .name = "pow", .saves_a = true, .saves_b = true, .domain = GradDomain::Positive,
    .forward = [](const Tensor& a, const Tensor& b, double) {
      return binary("pow", a, b, [](auto x, auto y) { return std::pow(x, y); }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return ternary("pow_backward", g, s.a, s.b, [](auto gy, auto x, auto y) {
        using T = decltype(gy);
        return y == 0 ? T(0) : gy * y * std::pow(x, y - 1);
      }); },
    .grad_b = [](const Tensor& g, const Saved& s) {
      return ternary("pow_backward_exponent", g, s.a, s.b, [](auto gy, auto x, auto y) {
        using T = decltype(gy);
        return x == 0 && y >= 0 ? T(0) : gy * std::pow(x, y) * std::log(x);
      }); }};
constexpr ElementwiseOp kMaximum{
    .name = "maximum", .saves_a = true, .saves_b = true,
    .forward = [](const Tensor& a, const Tensor& b, double) {
      return extremum("maximum", a, b, true); },
    .grad_a = [](const Tensor& g, const Saved& s) { return mul(g, select_share(s.a, s.b, true)); },
    .grad_b = [](const Tensor& g, const Saved& s) { return mul(g, select_share(s.b, s.a, true)); }};
constexpr ElementwiseOp kMinimum{
    .name = "minimum", .saves_a = true, .saves_b = true,
    .forward = [](const Tensor& a, const Tensor& b, double) {
      return extremum("minimum", a, b, false); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return mul(g, select_share(s.a, s.b, false)); },
    .grad_b = [](const Tensor& g, const Saved& s) {
      return mul(g, select_share(s.b, s.a, false)); }};

// With a scalar: one kernel each, so no scalar tensor is broadcast.
constexpr ElementwiseOp kAddScalar{
    .name = "add", .scalar = true,
    .forward = [](const Tensor& a, const Tensor&, double s) {
      return unary(a, [s](auto x) { return x + cast<decltype(x)>(s); }); },
    .grad_a = [](const Tensor& g, const Saved&) { return g; }};
constexpr ElementwiseOp kRsub{
    .name = "rsub", .scalar = true,
    .forward = [](const Tensor& a, const Tensor&, double s) {
      return unary(a, [s](auto x) { return cast<decltype(x)>(s) - x; }); },
    .grad_a = [](const Tensor& g, const Saved&) { return neg(g); }};
constexpr ElementwiseOp kMulScalar{
    .name = "mul", .scalar = true,
    .forward = [](const Tensor& a, const Tensor&, double s) {
      return unary(a, [s](auto x) { return x * cast<decltype(x)>(s); }); },
    .grad_a = [](const Tensor& g, const Saved& s) { return mul(g, s.s); }};
// A true division (not a * (1/s), which rounds differently from x / s).
constexpr ElementwiseOp kDivScalar{
    .name = "div", .scalar = true,
    .forward = [](const Tensor& a, const Tensor&, double s) {
      return unary(a, [s](auto x) { return x / cast<decltype(x)>(s); }); },
    .grad_a = [](const Tensor& g, const Saved& s) { return div(g, s.s); }};
constexpr ElementwiseOp kRdiv{
    .name = "rdiv", .scalar = true, .saves_a = true, .saves_out = true,
    .domain = GradDomain::AwayFromZero,
    .forward = [](const Tensor& a, const Tensor&, double s) {
      return unary(a, [s](auto x) { return cast<decltype(x)>(s) / x; }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return neg(div(mul(g, s.out), s.a)); }};  // -(s/a)/a
// p a^(p-1); exactly 0 for p == 0 (else 0 * inf at a == 0).
constexpr ElementwiseOp kPowScalar{
    .name = "pow", .scalar = true, .saves_a = true, .domain = GradDomain::Positive,
    .forward = [](const Tensor& a, const Tensor&, double p) {
      return unary(a, [p](auto x) { return std::pow(x, cast<decltype(x)>(p)); }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      if (s.s == 0.0) return zeros(g.shape(), g.dtype());
      return binary("pow_backward", g, s.a, [p = s.s](auto gy, auto x) {
        using T = decltype(gy);
        return gy * cast<T>(p) * std::pow(x, cast<T>(p - 1.0));
      }); }};

// Unary.
constexpr ElementwiseOp kNeg{
    .name = "neg",
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return -x; }); },
    .grad_a = [](const Tensor& g, const Saved&) { return neg(g); }};
constexpr ElementwiseOp kAbs{
    .name = "abs", .saves_a = true, .domain = GradDomain::AwayFromZero,
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return std::abs(x); }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return mul(g, unary(s.a, [](auto x) {
        return static_cast<decltype(x)>((x > 0) - (x < 0)); })); }};  // sign(a)
constexpr ElementwiseOp kExp{
    .name = "exp", .saves_out = true,
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return std::exp(x); }); },
    .grad_a = [](const Tensor& g, const Saved& s) { return mul(g, s.out); }};
constexpr ElementwiseOp kLog{
    .name = "log", .saves_a = true, .domain = GradDomain::Positive,
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return std::log(x); }); },
    .grad_a = [](const Tensor& g, const Saved& s) { return div(g, s.a); }};
constexpr ElementwiseOp kSqrt{
    .name = "sqrt", .saves_out = true, .domain = GradDomain::Positive,
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return std::sqrt(x); }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return div(mul(g, 0.5), s.out); }};  // 1 / (2 sqrt a)
constexpr ElementwiseOp kRsqrt{
    .name = "rsqrt", .saves_out = true, .domain = GradDomain::Positive,
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return decltype(x)(1) / std::sqrt(x); }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return mul(g, mul(pow(s.out, 3.0), -0.5)); }};  // -1/2 a^(-3/2) = -1/2 out^3
constexpr ElementwiseOp kTanh{
    .name = "tanh", .saves_out = true,
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return std::tanh(x); }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return binary("tanh_backward", g, s.out,
                    [](auto gy, auto y) { return gy * (1 - y * y); }); }};
constexpr ElementwiseOp kSigmoid{
    .name = "sigmoid", .saves_out = true,
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return decltype(x)(1) / (1 + std::exp(-x)); }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return binary("sigmoid_backward", g, s.out,
                    [](auto gy, auto y) { return gy * y * (1 - y); }); }};
constexpr ElementwiseOp kRelu{
    .name = "relu", .saves_out = true, .domain = GradDomain::AwayFromZero,
    .forward = [](const Tensor& a, const Tensor&, double) {
      return unary(a, [](auto x) { return x > 0 ? x : decltype(x)(0); }); },
    .grad_a = [](const Tensor& g, const Saved& s) {
      return binary("relu_backward", g, s.out,
                    [](auto gy, auto y) { return y > 0 ? gy : decltype(gy)(0); }); }};
// clang-format on

constexpr const ElementwiseOp* kTable[] = {
    &kAdd,  &kSub,       &kMul,       &kDiv,  &kPow,       &kMaximum, &kMinimum, &kAddScalar,
    &kRsub, &kMulScalar, &kDivScalar, &kRdiv, &kPowScalar, &kNeg,     &kAbs,     &kExp,
    &kLog,  &kSqrt,      &kRsqrt,     &kTanh, &kSigmoid,   &kRelu};

}  // namespace

std::span<const ElementwiseOp* const> elementwise_ops() {
  return kTable;
}

Tensor apply(const ElementwiseOp& op, const Tensor& a, const Tensor& b, double s) {
  Tensor out = op.forward(a, b, s);
  const std::vector<Tensor> inputs = op.grad_b ? std::vector{a, b} : std::vector{a};
  if (!needs_grad(inputs)) return out;
  const auto save = [](bool saves, const Tensor& t) {
    return saves ? SavedTensor(t) : SavedTensor();
  };
  record(op.name, out, inputs,
         [&op, s, sa = save(op.saves_a, a), sb = save(op.saves_b, b), so = save(op.saves_out, out)](
             const Tensor& g, const Node& n) -> std::vector<Tensor> {
           const auto get = [](const SavedTensor& t) { return t.defined() ? t.get() : Tensor(); };
           const Saved saved{get(sa), get(sb), get(so), s};
           std::vector<Tensor> grads{grad_if(n, 0, [&] { return op.grad_a(g, saved); })};
           if (op.grad_b) grads.push_back(grad_if(n, 1, [&] { return op.grad_b(g, saved); }));
           return grads;
         });
  return out;
}

// ---- the public functions: one entry each ----

#define PW_BINARY(fn, entry)                    \
  Tensor fn(const Tensor& a, const Tensor& b) { \
    return apply(entry, a, b);                  \
  }
#define PW_UNARY(fn, entry)    \
  Tensor fn(const Tensor& a) { \
    return apply(entry, a);    \
  }
PW_BINARY(add, kAdd)
PW_BINARY(sub, kSub)
PW_BINARY(mul, kMul)
PW_BINARY(div, kDiv)
PW_BINARY(pow, kPow)
PW_BINARY(maximum, kMaximum)
PW_BINARY(minimum, kMinimum)
PW_UNARY(neg, kNeg)
PW_UNARY(abs, kAbs)
PW_UNARY(exp, kExp)
PW_UNARY(log, kLog)
PW_UNARY(sqrt, kSqrt)
PW_UNARY(rsqrt, kRsqrt)
PW_UNARY(tanh, kTanh)
PW_UNARY(sigmoid, kSigmoid)
PW_UNARY(relu, kRelu)
#undef PW_BINARY
#undef PW_UNARY

Tensor add(const Tensor& a, double s) {
  return apply(kAddScalar, a, Tensor(), s);
}
Tensor sub(const Tensor& a, double s) {
  return add(a, -s);
}
Tensor rsub(double s, const Tensor& a) {
  return apply(kRsub, a, Tensor(), s);
}
Tensor mul(const Tensor& a, double s) {
  return apply(kMulScalar, a, Tensor(), s);
}
Tensor div(const Tensor& a, double s) {
  return apply(kDivScalar, a, Tensor(), s);
}
Tensor rdiv(double s, const Tensor& a) {
  return apply(kRdiv, a, Tensor(), s);
}
Tensor pow(const Tensor& a, double p) {
  return apply(kPowScalar, a, Tensor(), p);
}

// ---- comparisons and where ----

#define PW_COMPARISON(name, expr)                                                              \
  Tensor name(const Tensor& a, const Tensor& b) {                                              \
    return binary(#name, a, b, [](auto x, auto y) { return static_cast<decltype(x)>(expr); }); \
  }
PW_COMPARISON(eq, x == y)
PW_COMPARISON(ne, x != y)
PW_COMPARISON(lt, x < y)
PW_COMPARISON(le, x <= y)
PW_COMPARISON(gt, x > y)
PW_COMPARISON(ge, x >= y)
#undef PW_COMPARISON

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const DType dt = kernels::common_dtype("where", {cond, a, b});
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, dt);
  PW_DISPATCH(dt, [&] {
    kernels::map3<scalar_t>(out, cond, a, b,
                            [](scalar_t c, scalar_t x, scalar_t y) { return c != 0 ? x : y; });
  });
  if (needs_grad({a, b}))
    record("where", out, {a, b},
           [sc = SavedTensor(cond)](const Tensor& g, const Node& n) -> std::vector<Tensor> {
             const Tensor c = sc.get();
             const Tensor zero = zeros({}, g.dtype());
             return {grad_if(n, 0, [&] { return where(c, g, zero); }),
                     grad_if(n, 1, [&] { return where(c, zero, g); })};
           });
  return out;
}

// ---- in place ----

namespace {
void check_inplace(const char* op, const Tensor& a) {
  PW_CHECK(!(GradMode::is_enabled() && a.requires_grad()),
           "[{}] in-place change of a tensor of shape {} that requires grad; use NoGradGuard", op,
           shape_str(a.shape()));
}
}  // namespace

Tensor& add_(Tensor& a, const Tensor& b, double alpha) {
  check_inplace("add_", a);
  kernels::check_writable("add_", a);
  const DType dt = kernels::common_dtype("add_", {a, b});
  PW_CHECK(broadcast_shapes(a.shape(), b.shape(), "add_") == a.shape(),
           "[add_] cannot add shape {} into shape {} in place", shape_str(b.shape()),
           shape_str(a.shape()));
  PW_DISPATCH(dt, [&] {
    const auto al = static_cast<scalar_t>(alpha);
    kernels::map2<scalar_t>(a, a, b, [al](scalar_t x, scalar_t y) { return x + al * y; });
  });
  a.bump_version();
  return a;
}

Tensor& mul_(Tensor& a, double s) {
  check_inplace("mul_", a);
  kernels::check_writable("mul_", a);
  PW_DISPATCH(a.dtype(), [&] {
    const auto v = static_cast<scalar_t>(s);
    kernels::map1<scalar_t>(a, a, [v](scalar_t x) { return x * v; });
  });
  a.bump_version();
  return a;
}

Tensor& fill_(Tensor& a, double value) {
  check_inplace("fill_", a);
  kernels::check_writable("fill_", a);
  PW_DISPATCH(a.dtype(), [&] {
    const auto v = static_cast<scalar_t>(value);
    kernels::map1<scalar_t>(a, a, [v](scalar_t) { return v; });
  });
  a.bump_version();
  return a;
}

Tensor& zero_(Tensor& a) {
  return fill_(a, 0.0);
}

}  // namespace pw
