#include "ops/elementwise.h"

#include <cmath>
#include <functional>
#include <string>

#include "core/autograd.h"
#include "ops/broadcast.h"
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

// ---- binary ----

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary("add", a, b, [](auto x, auto y) { return x + y; });
  if (needs_grad({a, b}))
    record("add", out, {a, b}, [](const Tensor& g, const Node& n) -> std::vector<Tensor> {
      return {grad_if(n, 0, [&] { return g; }), grad_if(n, 1, [&] { return g; })};
    });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary("sub", a, b, [](auto x, auto y) { return x - y; });
  if (needs_grad({a, b}))
    record("sub", out, {a, b}, [](const Tensor& g, const Node& n) -> std::vector<Tensor> {
      return {grad_if(n, 0, [&] { return g; }), grad_if(n, 1, [&] { return neg(g); })};
    });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary("mul", a, b, [](auto x, auto y) { return x * y; });
  if (needs_grad({a, b}))
    record("mul", out, {a, b},
           [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensor& g,
                                                      const Node& n) -> std::vector<Tensor> {
             return {grad_if(n, 0, [&] { return mul(g, sb.get()); }),
                     grad_if(n, 1, [&] { return mul(g, sa.get()); })};
           });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary("div", a, b, [](auto x, auto y) { return x / y; });
  if (needs_grad({a, b}))
    record("div", out, {a, b},
           [sb = SavedTensor(b), so = SavedTensor(out)](const Tensor& g,
                                                        const Node& n) -> std::vector<Tensor> {
             // d(a/b)/da = 1/b, d(a/b)/db = -(a/b)/b
             return {grad_if(n, 0, [&] { return div(g, sb.get()); }),
                     grad_if(n, 1, [&] { return neg(div(mul(g, so.get()), sb.get())); })};
           });
  return out;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary("pow", a, b, [](auto x, auto y) { return std::pow(x, y); });
  if (needs_grad({a, b}))
    record("pow", out, {a, b},
           [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensor& g,
                                                      const Node& n) -> std::vector<Tensor> {
             // d(a^b)/da = b a^(b-1), taken as 0 where b == 0 (so 0^0 gives 0, not 0 * inf);
             // d(a^b)/db = a^b log a, taken as 0 where a == 0 and b >= 0 (a^b is 0 or 1 there
             // and PyTorch defines it so). Both as in PyTorch's pow_backward.
             const Tensor av = sa.get(), bv = sb.get();
             return {
                 grad_if(n, 0,
                         [&] {
                           return ternary("pow_backward", g, av, bv, [](auto gy, auto x, auto y) {
                             using T = decltype(gy);
                             return y == 0 ? T(0) : gy * y * std::pow(x, y - 1);
                           });
                         }),
                 grad_if(n, 1, [&] {
                   return ternary("pow_backward_exponent", g, av, bv, [](auto gy, auto x, auto y) {
                     using T = decltype(gy);
                     return x == 0 && y >= 0 ? T(0) : gy * std::pow(x, y) * std::log(x);
                   });
                 })};
           });
  return out;
}

namespace {
// Gradient share of `a` in maximum/minimum: 1 where a wins, 0.5 on ties, 0 where it loses.
Tensor select_share(const Tensor& a, const Tensor& b, bool is_max) {
  return binary(is_max ? "maximum_backward" : "minimum_backward", a, b, [is_max](auto x, auto y) {
    using T = decltype(x);
    if (x == y) return T(0.5);
    return (is_max ? x > y : x < y) ? T(1) : T(0);
  });
}

Tensor extremum(const char* name, const Tensor& a, const Tensor& b, bool is_max) {
  // NaN propagates from either side (torch.maximum); std::max alone would drop a NaN in y.
  Tensor out = binary(name, a, b, [is_max](auto x, auto y) {
    return std::isnan(x) || (is_max ? x > y : x < y) ? x : y;
  });
  if (needs_grad({a, b}))
    record(name, out, {a, b},
           [sa = SavedTensor(a), sb = SavedTensor(b), is_max](
               const Tensor& g, const Node& n) -> std::vector<Tensor> {
             return {
                 grad_if(n, 0, [&] { return mul(g, select_share(sa.get(), sb.get(), is_max)); }),
                 grad_if(n, 1, [&] { return mul(g, select_share(sb.get(), sa.get(), is_max)); })};
           });
  return out;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return extremum("maximum", a, b, true);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return extremum("minimum", a, b, false);
}

// ---- with a scalar: one kernel each, so no scalar tensor is broadcast ----

namespace {
template <typename F>
Tensor scalar_op(const char* name, const Tensor& a, F f, BackwardFn backward) {
  Tensor out = unary(a, f);
  if (needs_grad({a})) record(name, out, {a}, std::move(backward));
  return out;
}
}  // namespace

Tensor add(const Tensor& a, double s) {
  return scalar_op(
      "add", a, [s](auto x) { return x + static_cast<decltype(x)>(s); },
      [](const Tensor& g, const Node&) -> std::vector<Tensor> { return {g}; });
}
Tensor sub(const Tensor& a, double s) {
  return add(a, -s);
}
Tensor rsub(double s, const Tensor& a) {
  return scalar_op(
      "rsub", a, [s](auto x) { return static_cast<decltype(x)>(s) - x; },
      [](const Tensor& g, const Node&) -> std::vector<Tensor> { return {neg(g)}; });
}
Tensor mul(const Tensor& a, double s) {
  return scalar_op(
      "mul", a, [s](auto x) { return x * static_cast<decltype(x)>(s); },
      [s](const Tensor& g, const Node&) -> std::vector<Tensor> { return {mul(g, s)}; });
}
// A true division (not a * (1/s), which rounds differently from x / s).
Tensor div(const Tensor& a, double s) {
  return scalar_op(
      "div", a, [s](auto x) { return x / static_cast<decltype(x)>(s); },
      [s](const Tensor& g, const Node&) -> std::vector<Tensor> { return {div(g, s)}; });
}
Tensor rdiv(double s, const Tensor& a) {
  Tensor out = unary(a, [s](auto x) { return static_cast<decltype(x)>(s) / x; });
  if (needs_grad({a}))
    record("rdiv", out, {a},
           [sa = SavedTensor(a), so = SavedTensor(out)](const Tensor& g,
                                                        const Node&) -> std::vector<Tensor> {
             return {neg(div(mul(g, so.get()), sa.get()))};  // d(s/a)/da = -(s/a)/a
           });
  return out;
}
Tensor pow(const Tensor& a, double p) {
  Tensor out = unary(a, [p](auto x) { return std::pow(x, static_cast<decltype(x)>(p)); });
  if (needs_grad({a}))
    record("pow", out, {a},
           [sa = SavedTensor(a), p](const Tensor& g, const Node&) -> std::vector<Tensor> {
             // p a^(p-1); exactly 0 for p == 0 (else 0 * inf at a == 0).
             if (p == 0.0) return {zeros(g.shape(), g.dtype())};
             return {binary("pow_backward", g, sa.get(), [p](auto gy, auto x) {
               using T = decltype(gy);
               return gy * static_cast<T>(p) * std::pow(x, static_cast<T>(p - 1.0));
             })};
           });
  return out;
}

// ---- unary ----

Tensor neg(const Tensor& a) {
  return scalar_op(
      "neg", a, [](auto x) { return -x; },
      [](const Tensor& g, const Node&) -> std::vector<Tensor> { return {neg(g)}; });
}

Tensor abs(const Tensor& a) {
  Tensor out = unary(a, [](auto x) { return std::abs(x); });
  if (needs_grad({a}))
    record("abs", out, {a},
           [sa = SavedTensor(a)](const Tensor& g, const Node&) -> std::vector<Tensor> {
             Tensor sign = unary(
                 sa.get(), [](auto x) { return static_cast<decltype(x)>((x > 0) - (x < 0)); });
             return {mul(g, sign)};
           });
  return out;
}

Tensor exp(const Tensor& a) {
  Tensor out = unary(a, [](auto x) { return std::exp(x); });
  if (needs_grad({a}))
    record("exp", out, {a},
           [so = SavedTensor(out)](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {mul(g, so.get())};
           });
  return out;
}

Tensor log(const Tensor& a) {
  Tensor out = unary(a, [](auto x) { return std::log(x); });
  if (needs_grad({a}))
    record("log", out, {a},
           [sa = SavedTensor(a)](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {div(g, sa.get())};
           });
  return out;
}

Tensor sqrt(const Tensor& a) {
  Tensor out = unary(a, [](auto x) { return std::sqrt(x); });
  if (needs_grad({a}))
    record("sqrt", out, {a},
           [so = SavedTensor(out)](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {div(mul(g, 0.5), so.get())};  // 1 / (2 sqrt a)
           });
  return out;
}

Tensor rsqrt(const Tensor& a) {
  Tensor out = unary(a, [](auto x) { return decltype(x)(1) / std::sqrt(x); });
  if (needs_grad({a}))
    record("rsqrt", out, {a},
           [so = SavedTensor(out)](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {mul(g, mul(pow(so.get(), 3.0), -0.5))};  // -1/2 a^(-3/2) = -1/2 out^3
           });
  return out;
}

Tensor tanh(const Tensor& a) {
  Tensor out = unary(a, [](auto x) { return std::tanh(x); });
  if (needs_grad({a}))
    record("tanh", out, {a},
           [so = SavedTensor(out)](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {binary("tanh_backward", g, so.get(),
                            [](auto gy, auto y) { return gy * (1 - y * y); })};
           });
  return out;
}

Tensor sigmoid(const Tensor& a) {
  Tensor out = unary(a, [](auto x) { return decltype(x)(1) / (1 + std::exp(-x)); });
  if (needs_grad({a}))
    record("sigmoid", out, {a},
           [so = SavedTensor(out)](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {binary("sigmoid_backward", g, so.get(),
                            [](auto gy, auto y) { return gy * y * (1 - y); })};
           });
  return out;
}

Tensor relu(const Tensor& a) {
  Tensor out = unary(a, [](auto x) { return x > 0 ? x : decltype(x)(0); });
  if (needs_grad({a}))
    record("relu", out, {a},
           [so = SavedTensor(out)](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {binary("relu_backward", g, so.get(),
                            [](auto gy, auto y) { return y > 0 ? gy : decltype(gy)(0); })};
           });
  return out;
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
