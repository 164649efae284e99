// Elementwise ops: gradients (finite differences, float64), hand-computed values, error
// messages, and the broadcast/strided kernel paths against a plain loop.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "ops/broadcast.h"
#include "ops/elementwise.h"
#include "ops/elementwise_rules.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "scoped_threads.h"
#include "tests/op_test_helpers.h"

using namespace pw;
using pw::test::leaf;
using pw::test::spread_leaf;

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<double> values(const Tensor& t) {
  return t.to_vector<double>();
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Layer 1: gradients. Non-contiguous operands are made inside fn from contiguous leaves:
// transpose((3,2)) -> (2,3) strides (1,2); slice with step 2 of (2,6) -> (2,3) strides (6,2);
// expand((1,3)) -> (2,3) strides (0,1).

TEST_CASE("gradcheck: add with broadcasting and non-contiguous operands", "[gradcheck]") {
  Tensor a = leaf({2, 3}, 1), b = leaf({3}, 2), at = leaf({3, 2}, 3), c = leaf({2, 1}, 4);
  CHECK_GRADCHECK([](const auto& in) { return add(in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK([](const auto& in) { return add(transpose(in[0], 0, 1), in[1]); }, {at, c});
  CHECK_GRADCHECK([](const auto& in) { return add(in[0], in[1]); }, {c, b});  // (2,1)+(3)->(2,3)
}

TEST_CASE("gradcheck: sub with broadcasting and a sliced operand", "[gradcheck]") {
  Tensor a = leaf({2, 6}, 5), b = leaf({2, 1}, 6);
  CHECK_GRADCHECK([](const auto& in) { return sub(slice(in[0], 1, 0, 6, 2), in[1]); }, {a, b});
  CHECK_GRADCHECK([](const auto& in) { return sub(in[1], in[0]); }, {a, b});
}

TEST_CASE("gradcheck: mul with broadcasting and an expanded operand", "[gradcheck]") {
  Tensor a = leaf({2, 3}, 7), b = leaf({1, 3}, 8), at = leaf({3, 2}, 9);
  CHECK_GRADCHECK([](const auto& in) { return mul(in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK(
      [](const auto& in) {
        return mul(transpose(in[0], 0, 1), expand(in[1], {2, 3}));
      },
      {at, b});
  CHECK_GRADCHECK([](const auto& in) { return mul(in[0], in[0]); }, {a});  // both sides one leaf
}

TEST_CASE("gradcheck: div with broadcasting", "[gradcheck]") {
  Tensor a = leaf({2, 3}, 10), b = leaf({3}, 11, 0.5, 1.5), at = leaf({3, 2}, 12);
  CHECK_GRADCHECK([](const auto& in) { return div(in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK([](const auto& in) { return div(in[1], transpose(in[0], 0, 1)); },
                  {leaf({3, 2}, 13, 0.5, 1.5), b});
  CHECK_GRADCHECK([](const auto& in) { return div(transpose(in[0], 0, 1), in[1]); }, {at, b});
}

TEST_CASE("gradcheck: pow with a tensor exponent", "[gradcheck]") {
  // base in [0.5, 1.5] (log a defined), exponent in [-1.5, 2], broadcast (2,3) ** (3).
  Tensor a = leaf({2, 3}, 14, 0.5, 1.5), b = leaf({3}, 15, -1.5, 2.0);
  CHECK_GRADCHECK([](const auto& in) { return pow(in[0], in[1]); }, {a, b});
  Tensor at = leaf({3, 2}, 16, 0.5, 1.5);
  CHECK_GRADCHECK([](const auto& in) { return pow(transpose(in[0], 0, 1), in[1]); }, {at, b});
}

TEST_CASE("gradcheck: pow with a scalar exponent", "[gradcheck]") {
  Tensor a = leaf({2, 3}, 17, 0.5, 1.5), s = leaf({2, 3}, 18);  // s has negative values
  for (double p : {2.0, 3.0, 0.5, -1.5}) {
    INFO("exponent " << p);
    CHECK_GRADCHECK([p](const auto& in) { return pow(in[0], p); }, {a});
  }
  CHECK_GRADCHECK([](const auto& in) { return pow(transpose(in[0], 0, 1), 3.0); }, {s});
  CHECK_GRADCHECK([](const auto& in) { return pow(in[0], 0.0); }, {s});
}

TEST_CASE("gradcheck: maximum and minimum with broadcasting", "[gradcheck]") {
  Tensor a = spread_leaf({2, 3}, 19), b = spread_leaf({3}, 20), at = spread_leaf({3, 2}, 21);
  CHECK_GRADCHECK([](const auto& in) { return maximum(in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK([](const auto& in) { return minimum(in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK([](const auto& in) { return maximum(transpose(in[0], 0, 1), in[1]); }, {at, b});
  CHECK_GRADCHECK([](const auto& in) { return minimum(in[1], transpose(in[0], 0, 1)); }, {at, b});
}

TEST_CASE("gradcheck: scalar forms of add, sub, rsub, mul, div, rdiv", "[gradcheck]") {
  Tensor a = leaf({3, 2}, 22), pos = leaf({3, 2}, 23, 0.5, 1.5);
  auto t = [](const Tensor& x) { return transpose(x, 0, 1); };
  CHECK_GRADCHECK([&](const auto& in) { return add(t(in[0]), 2.5); }, {a});
  CHECK_GRADCHECK([&](const auto& in) { return sub(t(in[0]), 2.5); }, {a});
  CHECK_GRADCHECK([&](const auto& in) { return rsub(2.5, t(in[0])); }, {a});
  CHECK_GRADCHECK([&](const auto& in) { return mul(t(in[0]), -3.0); }, {a});
  CHECK_GRADCHECK([&](const auto& in) { return div(t(in[0]), -3.0); }, {a});
  CHECK_GRADCHECK([&](const auto& in) { return rdiv(2.0, t(in[0])); }, {pos});
}

TEST_CASE("gradcheck: neg and abs on non-contiguous inputs", "[gradcheck]") {
  Tensor a = spread_leaf({3, 4}, 24);  // no element within 0.03 of abs's kink at 0
  CHECK_GRADCHECK([](const auto& in) { return neg(transpose(in[0], 0, 1)); }, {a});
  CHECK_GRADCHECK([](const auto& in) { return abs(slice(in[0], 1, 0, 4, 2)); }, {a});
  CHECK_GRADCHECK([](const auto& in) { return abs(in[0]); }, {a});
}

TEST_CASE("gradcheck: exp, log, sqrt, rsqrt on non-contiguous inputs", "[gradcheck]") {
  Tensor a = leaf({3, 4}, 25), pos = leaf({3, 4}, 26, 0.5, 2.0);
  auto t = [](const Tensor& x) { return transpose(x, 0, 1); };
  CHECK_GRADCHECK([&](const auto& in) { return exp(t(in[0])); }, {a});
  CHECK_GRADCHECK([&](const auto& in) { return log(t(in[0])); }, {pos});
  CHECK_GRADCHECK([&](const auto& in) { return sqrt(slice(in[0], 0, 0, 3, 2)); }, {pos});
  CHECK_GRADCHECK([&](const auto& in) { return rsqrt(t(in[0])); }, {pos});
}

TEST_CASE("gradcheck: tanh, sigmoid, relu on non-contiguous inputs", "[gradcheck]") {
  Tensor a = leaf({3, 4}, 27, -2.0, 2.0), s = spread_leaf({3, 4}, 28);
  CHECK_GRADCHECK([](const auto& in) { return tanh(transpose(in[0], 0, 1)); }, {a});
  CHECK_GRADCHECK([](const auto& in) { return sigmoid(transpose(in[0], 0, 1)); }, {a});
  CHECK_GRADCHECK([](const auto& in) { return relu(transpose(in[0], 0, 1)); }, {s});
  CHECK_GRADCHECK([](const auto& in) { return relu(expand(slice(in[0], 0, 1, 2), {2, 4})); }, {s});
}

TEST_CASE("gradcheck: where gives gradients to a and b through a broadcast condition",
          "[gradcheck]") {
  const Tensor cond = tensor({1, 0, 1}, {3}, DType::Float64);  // broadcast over rows
  Tensor a = leaf({2, 3}, 29), b = leaf({2, 1}, 30);
  CHECK_GRADCHECK([&](const auto& in) { return where(cond, in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK([&](const auto& in) { return where(cond, transpose(in[0], 0, 1), in[1]); },
                  {leaf({3, 2}, 31), b});
}

// ---------------------------------------------------------------------------------------------
// Layer 2: hand-computed values.

// The table of ops/elementwise_rules.h, walked: every entry's gradient formulas against finite
// differences, with operands in the entry's domain, a broadcast second operand and a transposed
// (non-contiguous) first one. A new entry is checked here without a test of its own.
TEST_CASE("gradcheck: every entry of the elementwise table", "[gradcheck]") {
  // Spread values (no ties between operands, nothing within 0.03 of 0), moved into the domain.
  const auto operand = [](const Shape& shape, std::uint64_t seed, GradDomain domain) {
    std::vector<double> v = spread_leaf(shape, seed).to_vector<double>();
    for (double& x : v) {
      if (domain == GradDomain::Positive) x = std::abs(x) + 0.5;
      if (domain == GradDomain::AwayFromZero) x += x > 0 ? 0.5 : -0.5;
    }
    return from_vector(v, shape).requires_grad_();
  };
  REQUIRE(elementwise_ops().size() >= 20);
  std::uint64_t seed = 100;
  for (const ElementwiseOp* op : elementwise_ops()) {
    const bool binary = op->grad_b != nullptr;
    INFO(op->name << (op->scalar ? "(a, s)" : binary ? "(a, b)" : "(a)"));
    const double s = op->scalar ? 1.7 : 0.0;
    // (3, 2) transposed to (2, 3), then against (3): a broadcast and a strided operand.
    const Tensor a = operand({3, 2}, ++seed, op->domain);
    const Tensor b = operand({3}, ++seed, op->domain);
    std::vector<Tensor> inputs{a};
    if (binary) inputs.push_back(b);
    CHECK_GRADCHECK(
        [&](const auto& in) {
          return apply(*op, transpose(in[0], 0, 1), binary ? in[1] : Tensor(), s);
        },
        inputs);
  }
}

TEST_CASE("binary ops broadcast (2,3) against (3) and (2,1)", "[elementwise]") {
  const Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor row = tensor({10, 20, 30}, {3});
  const Tensor col = tensor({2, 4}, {2, 1});
  // a + row: [[1+10, 2+20, 3+30], [4+10, 5+20, 6+30]]
  CHECK(add(a, row).to_vector() == std::vector<float>{11, 22, 33, 14, 25, 36});
  // a - col: row i minus col[i]: [[1-2, 2-2, 3-2], [4-4, 5-4, 6-4]]
  CHECK(sub(a, col).to_vector() == std::vector<float>{-1, 0, 1, 0, 1, 2});
  // a * col: [[2, 4, 6], [16, 20, 24]]
  CHECK(mul(a, col).to_vector() == std::vector<float>{2, 4, 6, 16, 20, 24});
  // a / col: [[0.5, 1, 1.5], [1, 1.25, 1.5]]
  CHECK(div(a, col).to_vector() == std::vector<float>{0.5f, 1, 1.5f, 1, 1.25f, 1.5f});
  // (2,1) + (3) -> (2,3): [[2+10, 2+20, 2+30], [4+10, 4+20, 4+30]]
  CHECK(add(col, row).shape() == Shape{2, 3});
  CHECK(add(col, row).to_vector() == std::vector<float>{12, 22, 32, 14, 24, 34});
  // A rank-0 operand broadcasts to anything: 7 + [1, 2] = [8, 9].
  CHECK(add(full({}, 7.0), tensor({1, 2}, {2})).to_vector() == std::vector<float>{8, 9});
  CHECK(add(full({}, 7.0), full({}, 1.0)).shape() == Shape{});
  // Zero-size broadcast: (0,3) + (3) -> (0,3), no elements.
  CHECK(add(zeros({0, 3}), row).shape() == Shape{0, 3});
  CHECK(mul(zeros({2, 0}), zeros({1, 0})).shape() == Shape{2, 0});
}

TEST_CASE("scalar forms and unary ops give hand-computed values", "[elementwise]") {
  const Tensor x = tensor({-2, 0.5, 4}, {3}, DType::Float64);
  CHECK(values(add(x, 1.0)) == std::vector<double>{-1, 1.5, 5});
  CHECK(values(rsub(1.0, x)) == std::vector<double>{3, 0.5, -3});
  CHECK(values(mul(x, 2.0)) == std::vector<double>{-4, 1, 8});
  CHECK(values(div(x, 4.0)) == std::vector<double>{-0.5, 0.125, 1});
  CHECK(values(rdiv(1.0, x)) == std::vector<double>{-0.5, 2, 0.25});
  // 1/3 as a true division: x / 3 must equal the IEEE quotient, not x * 0.333...
  CHECK(div(tensor({1}, {1}, DType::Float64), 3.0).item() == 1.0 / 3.0);
  CHECK(values(neg(x)) == std::vector<double>{2, -0.5, -4});
  CHECK(values(abs(x)) == std::vector<double>{2, 0.5, 4});
  CHECK(values(relu(x)) == std::vector<double>{0, 0.5, 4});
  CHECK(values(pow(x, 2.0)) == std::vector<double>{4, 0.25, 16});
  CHECK(values(sqrt(tensor({4, 0.25}, {2}, DType::Float64))) == std::vector<double>{2, 0.5});
  CHECK(values(rsqrt(tensor({4, 0.25}, {2}, DType::Float64))) == std::vector<double>{0.5, 2});
  CHECK(sigmoid(full({}, 0.0)).item() == 0.5);
  // tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 0.6; sigmoid(ln 3) = 3 / (3 + 1) = 0.75.
  CHECK(tanh(full({}, std::log(2.0), DType::Float64)).item() == Approx(0.6));
  CHECK(sigmoid(full({}, std::log(3.0), DType::Float64)).item() == Approx(0.75));
  CHECK(exp(full({}, std::log(5.0), DType::Float64)).item() == Approx(5.0));
  CHECK(log(full({}, std::exp(2.0), DType::Float64)).item() == Approx(2.0));
  // Large negative inputs: sigmoid underflows to 0 without NaN.
  CHECK(sigmoid(full({}, -1000.0)).item() == 0.0);
}

TEST_CASE("pow at zero: forward and the gradients PyTorch defines there", "[elementwise]") {
  // pow(a, b) forward: 2^3 = 8, 3^2 = 9, 0^0 = 1, 0^2 = 0.
  Tensor a = tensor({2, 3, 0, 0}, {4}, DType::Float64).requires_grad_();
  Tensor b = tensor({3, 2, 0, 2}, {4}, DType::Float64).requires_grad_();
  Tensor y = pow(a, b);
  CHECK(values(y) == std::vector<double>{8, 9, 1, 0});
  sum(y).backward();
  // d/da = b a^(b-1): 3*4 = 12, 2*3 = 6, 0 (b == 0, not 0 * 0^-1 = NaN), 2*0 = 0.
  CHECK(values(a.grad()) == std::vector<double>{12, 6, 0, 0});
  // d/db = a^b ln a: 8 ln 2, 9 ln 3, then 0 where a == 0 and b >= 0 (not 1 * -inf, 0 * -inf).
  const auto gb = values(b.grad());
  CHECK(gb[0] == Approx(8 * std::log(2.0)));
  CHECK(gb[1] == Approx(9 * std::log(3.0)));
  CHECK(gb[2] == 0.0);
  CHECK(gb[3] == 0.0);

  // Scalar exponent 0: d/dx x^0 = 0 everywhere, including x = 0.
  Tensor x = tensor({0, 2}, {2}, DType::Float64).requires_grad_();
  sum(pow(x, 0.0)).backward();
  CHECK(values(x.grad()) == std::vector<double>{0, 0});
  // Scalar exponent 2 at x = 0: 2 * 0 = 0; exponent 0.5 at 0 is +inf as in PyTorch.
  Tensor z = tensor({0}, {1}, DType::Float64).requires_grad_();
  sum(pow(z, 2.0)).backward();
  CHECK(z.grad().item() == 0.0);
  z.zero_grad();
  sum(pow(z, 0.5)).backward();
  CHECK(std::isinf(z.grad().item()));
}

TEST_CASE("maximum and minimum propagate NaN and split ties", "[elementwise]") {
  const Tensor a = tensor({1, kNaN, 3, kNaN}, {4}, DType::Float64);
  const Tensor b = tensor({kNaN, 2, 1, kNaN}, {4}, DType::Float64);
  for (const Tensor& r : {maximum(a, b), minimum(a, b), maximum(b, a), minimum(b, a)}) {
    const auto v = values(r);
    CHECK(std::isnan(v[0]));
    CHECK(std::isnan(v[1]));
    CHECK_FALSE(std::isnan(v[2]));
    CHECK(std::isnan(v[3]));
  }
  CHECK(maximum(a, b).at({2}) == 3.0);
  CHECK(minimum(a, b).at({2}) == 1.0);
  // Ties share the gradient: max(1, 1) sends 0.5 to each side; max(2, 3) sends 1 to b.
  Tensor x = tensor({1, 2}, {2}, DType::Float64).requires_grad_();
  Tensor y = tensor({1, 3}, {2}, DType::Float64).requires_grad_();
  sum(maximum(x, y)).backward();
  CHECK(values(x.grad()) == std::vector<double>{0.5, 0});
  CHECK(values(y.grad()) == std::vector<double>{0.5, 1});
}

TEST_CASE("comparisons and where", "[elementwise]") {
  const Tensor a = tensor({1, 2, 3}, {3}), b = tensor({2, 2, 2}, {3});
  CHECK(eq(a, b).to_vector() == std::vector<float>{0, 1, 0});
  CHECK(ne(a, b).to_vector() == std::vector<float>{1, 0, 1});
  CHECK(lt(a, b).to_vector() == std::vector<float>{1, 0, 0});
  CHECK(le(a, b).to_vector() == std::vector<float>{1, 1, 0});
  CHECK(gt(a, b).to_vector() == std::vector<float>{0, 0, 1});
  CHECK(ge(a, b).to_vector() == std::vector<float>{0, 1, 1});
  // where(cond (3), a (2,1), b ()) -> (2,3): row i takes a[i] where cond, else 9.
  const Tensor cond = tensor({1, 0, 1}, {3});
  const Tensor col = tensor({5, 6}, {2, 1});
  CHECK(where(cond, col, full({}, 9.0)).to_vector() == std::vector<float>{5, 9, 5, 6, 9, 6});
  // No gradient reaches the condition, even when it requires grad.
  Tensor c = tensor({1, 0}, {2}, DType::Float64).requires_grad_();
  Tensor x = tensor({1, 2}, {2}, DType::Float64).requires_grad_();
  Tensor y = tensor({3, 4}, {2}, DType::Float64).requires_grad_();
  sum(where(c, x, y)).backward();
  CHECK_FALSE(c.grad().defined());
  CHECK(values(x.grad()) == std::vector<double>{1, 0});
  CHECK(values(y.grad()) == std::vector<double>{0, 1});
}

TEST_CASE("in-place ops write through views and refuse expanded targets", "[elementwise]") {
  Tensor a = zeros({2, 3});
  add_(a, tensor({1, 2, 3}, {3}), 2.0);  // each row += 2 * [1, 2, 3]
  CHECK(a.to_vector() == std::vector<float>{2, 4, 6, 2, 4, 6});
  Tensor col = slice(a, 1, 1, 2);  // the middle column, a strided view
  mul_(col, 10.0);
  CHECK(a.to_vector() == std::vector<float>{2, 40, 6, 2, 40, 6});
  Tensor t = transpose(a, 0, 1);
  fill_(t, 1.0);
  CHECK(a.to_vector() == std::vector<float>(6, 1.0f));
  const auto v0 = a.version();
  zero_(a);
  CHECK(a.version() > v0);
  Tensor e = expand(ones({1, 3}), {2, 3});
  CHECK_THROWS_WITH(mul_(e, 2.0),
                    "[mul_] cannot write in place into an expanded tensor of shape (2,3) with "
                    "strides (0,1)");
  CHECK_THROWS_WITH(add_(a, ones({4})), Catch::Contains("[add_] shapes (2,3) and (4)"));
  CHECK_THROWS_WITH(add_(a, ones({2, 2, 3})),
                    "[add_] cannot add shape (2,2,3) into shape (2,3) in place");
}

// ---------------------------------------------------------------------------------------------
// Errors name the op and the shapes.

TEST_CASE("elementwise errors name the op, the shapes and the dtypes", "[elementwise]") {
  CHECK_THROWS_WITH(mul(ones({2, 3}), ones({4})), "[mul] shapes (2,3) and (4) cannot be broadcast");
  CHECK_THROWS_WITH(add(ones({2, 3}), ones({3}, DType::Float64)),
                    "[add] dtype mismatch: (2,3) float32 vs (3) float64");
  CHECK_THROWS_WITH(pow(ones({2}), ones({3})), "[pow] shapes (2) and (3) cannot be broadcast");
  CHECK_THROWS_WITH(maximum(ones({2}), ones({2}, DType::Float64)),
                    "[maximum] dtype mismatch: (2) float32 vs (2) float64");
  CHECK_THROWS_WITH(where(ones({2}), ones({2}), ones({2}, DType::Float64)),
                    "[where] dtype mismatch: (2) float32 vs (2) float32 vs (2) float64");
  CHECK_THROWS_WITH(where(ones({3}), ones({2, 3}), ones({4})),
                    "[where] shapes (2,3) and (4) cannot be broadcast");
}

// ---------------------------------------------------------------------------------------------
// Fast path = reference: the contiguous, broadcast and general strided paths against a plain
// loop over logical indices (Tensor::at), on random non-contiguous float32 and float64 inputs.

namespace {

// A (4,5,6)-shaped operand in one of several layouts, built from fresh random storage.
Tensor layout(int kind, DType dt, std::uint64_t seed) {
  Generator gen(seed);
  switch (kind) {
    case 0:
      return rand({4, 5, 6}, gen, dt);  // contiguous
    case 1:
      return permute(rand({6, 4, 5}, gen, dt), {1, 2, 0});  // permuted
    case 2:
      return slice(slice(rand({8, 5, 13}, gen, dt), 0, 1, 8, 2), 2, -12, 13, 2);  // steps
    case 3:
      return expand(rand({1, 5, 1}, gen, dt), {4, 5, 6});  // stride 0
    case 4:
      return rand({5, 6}, gen, dt);  // broadcast rank
    default:
      return transpose(rand({6, 1}, gen, dt), 0, 1);  // (1,6), strides (1,1)
  }
}

template <typename T>
void check_binary_against_loop(DType dt) {
  for (int ka = 0; ka < 6; ++ka) {
    for (int kb = 0; kb < 6; ++kb) {
      const Tensor a = layout(ka, dt, 100 + ka), b = layout(kb, dt, 200 + kb);
      const Tensor out = mul(add(a, b), b);  // two binary kernels, each with its own layout
      const Tensor e = exp(a);               // unary kernel on the same layout
      const Shape shape = broadcast_shapes(a.shape(), b.shape(), "test");
      REQUIRE(out.shape() == shape);
      bool same = true;
      pw::test::for_each_index(shape, [&](const Shape& idx) {
        auto pick = [&](const Tensor& t) {  // the broadcast element of t at idx
          Shape i(idx.end() - t.dim(), idx.end());
          for (std::size_t d = 0; d < i.size(); ++d)
            if (t.shape()[d] == 1) i[d] = 0;
          return static_cast<T>(t.at(i));
        };
        const T x = pick(a), y = pick(b);
        const T want = (x + y) * y;
        same = same && static_cast<T>(out.at(idx)) == want;
        if (a.shape() == shape) same = same && static_cast<T>(e.at(idx)) == std::exp(x);
      });
      INFO("layouts " << ka << ", " << kb);
      CHECK(same);
    }
  }
}

}  // namespace

TEST_CASE("elementwise kernels match a plain loop on strided and broadcast inputs",
          "[elementwise]") {
  check_binary_against_loop<float>(DType::Float32);
  check_binary_against_loop<double>(DType::Float64);
}

TEST_CASE("elementwise kernels match a plain loop when split across threads", "[elementwise]") {
  testing::ScopedThreads threads(2);
  // 40*33*64 = 84,480 elements: above kParallelGrain, so rows start mid-odometer on each thread.
  Generator gen(7);
  const Tensor a = permute(rand({64, 40, 33}, gen, DType::Float64), {1, 2, 0});   // (40,33,64)
  const Tensor b = slice(rand({40, 1, 130}, gen, DType::Float64), 2, 1, 130, 2);  // (40,1,65)->
  const Tensor bs = slice(b, 2, 0, 64);                                           // (40,1,64)
  const Tensor out = sub(a, bs);
  const double* po = out.data<double>();  // contiguous result
  bool same = true;
  for (std::int64_t i = 0; i < 40; ++i)
    for (std::int64_t j = 0; j < 33; ++j)
      for (std::int64_t k = 0; k < 64; ++k)
        same = same && po[(i * 33 + j) * 64 + k] == a.at({i, j, k}) - bs.at({i, 0, k});
  CHECK(same);
}
