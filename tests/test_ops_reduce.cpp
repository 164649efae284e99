// Reductions: gradients over every axis set with keepdim both ways, hand-computed values,
// NaN/empty/scalar edge cases, errors, and both kernel walks (lanes, rows) against a plain loop.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "ops/broadcast.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "scoped_threads.h"
#include "tests/op_test_helpers.h"

using namespace pw;
using pw::test::leaf;
using pw::test::spread_leaf;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

std::vector<double> values(const Tensor& t) {
  return t.to_vector<double>();
}

// Every axis set of a rank-3 tensor worth checking: each single dim (and a negative one),
// each pair, and all dims (both spelled out and as the empty list).
const std::vector<Dims> kAxisSets = {{0}, {1}, {2}, {-1}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}, {}};

using Reduction = std::function<Tensor(const Tensor&, const Dims&, bool)>;

// gradcheck of `op` on a contiguous (2,3,4) leaf and on a permuted view of a (4,2,3) leaf,
// for every axis set and keepdim both ways.
void check_all_axes(const Reduction& op, const Tensor& x, const Tensor& x_perm) {
  for (const auto& dims : kAxisSets) {
    for (bool keepdim : {false, true}) {
      INFO("dims " << shape_str(dims) << " keepdim " << keepdim);
      CHECK_GRADCHECK([&](const auto& in) { return op(in[0], dims, keepdim); }, {x});
      CHECK_GRADCHECK(
          [&](const auto& in) {
            return op(permute(in[0], {1, 2, 0}), dims, keepdim);
          },
          {x_perm});
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Layer 1: gradients.

TEST_CASE("gradcheck: sum over every axis set, keepdim both ways", "[gradcheck]") {
  check_all_axes([](const Tensor& x, const Dims& d, bool k) { return sum(x, d, k); },
                 leaf({2, 3, 4}, 40), leaf({4, 2, 3}, 41));
}

TEST_CASE("gradcheck: mean over every axis set, keepdim both ways", "[gradcheck]") {
  check_all_axes([](const Tensor& x, const Dims& d, bool k) { return mean(x, d, k); },
                 leaf({2, 3, 4}, 42), leaf({4, 2, 3}, 43));
}

TEST_CASE("gradcheck: max over every axis set, keepdim both ways", "[gradcheck]") {
  // Spread values: no two within 0.06, so eps = 1e-6 never changes the arg-max.
  check_all_axes([](const Tensor& x, const Dims& d, bool k) { return max(x, d, k); },
                 spread_leaf({2, 3, 4}, 44), spread_leaf({4, 2, 3}, 45));
}

TEST_CASE("gradcheck: min over every axis set, keepdim both ways", "[gradcheck]") {
  check_all_axes([](const Tensor& x, const Dims& d, bool k) { return min(x, d, k); },
                 spread_leaf({2, 3, 4}, 46), spread_leaf({4, 2, 3}, 47));
}

TEST_CASE("gradcheck: var with correction 0 and 1 over every axis set", "[gradcheck]") {
  for (std::int64_t c : {0, 1}) {
    INFO("correction " << c);
    check_all_axes([c](const Tensor& x, const Dims& d, bool k) { return var(x, d, c, k); },
                   leaf({2, 3, 4}, 48), leaf({4, 2, 3}, 49));
  }
}

TEST_CASE("gradcheck: logsumexp over every axis set, keepdim both ways", "[gradcheck]") {
  check_all_axes([](const Tensor& x, const Dims& d, bool k) { return logsumexp(x, d, k); },
                 leaf({2, 3, 4}, 50, -2, 2), leaf({4, 2, 3}, 51, -2, 2));
}

TEST_CASE("gradcheck: sum of an expanded and a sliced input", "[gradcheck]") {
  Tensor x = leaf({3, 1}, 52), y = leaf({4, 6}, 53);
  CHECK_GRADCHECK([](const auto& in) { return sum(expand(in[0], {2, 3, 4}), {0, 2}); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return mean(slice(in[0], 1, 1, 6, 2), {0}); }, {y});
}

// ---------------------------------------------------------------------------------------------
// Layer 2: hand-computed values. x = [[1, 2, 3], [4, 5, 6]].

TEST_CASE("reductions of a (2,3) tensor give hand-computed values and shapes", "[reduce]") {
  const Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64);
  CHECK(values(sum(x, {0})) == std::vector<double>{5, 7, 9});  // 1+4, 2+5, 3+6
  CHECK(values(sum(x, {1})) == std::vector<double>{6, 15});    // 1+2+3, 4+5+6
  CHECK(sum(x).item() == 21);
  CHECK(sum(x).shape() == Shape{});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  CHECK(sum(x, {}, true).shape() == Shape{1, 1});
  CHECK(values(mean(x, {1})) == std::vector<double>{2, 5});  // 6/3, 15/3
  CHECK(mean(x).item() == 3.5);                              // 21/6
  CHECK(values(max(x, {0})) == std::vector<double>{4, 5, 6});
  CHECK(values(min(x, {1})) == std::vector<double>{1, 4});
  CHECK(max(x).item() == 6);
  CHECK(min(x, {0, 1}, true).shape() == Shape{1, 1});
  // Row [1, 2, 3]: mean 2, squared deviations 1 + 0 + 1 = 2; /(3-1) = 1, /3 = 2/3.
  CHECK(values(var(x, {1})) == std::vector<double>{1, 1});
  CHECK(var(x, {1}, 0).at({0}) == Approx(2.0 / 3.0));
  // Column [1, 4]: mean 2.5, deviations 2.25 + 2.25 = 4.5; /1 = 4.5.
  CHECK(values(var(x, {0})) == std::vector<double>{4.5, 4.5, 4.5});
  // logsumexp([0, ln 3]) = ln(1 + 3) = ln 4.
  CHECK(logsumexp(tensor({0, std::log(3.0)}, {2}, DType::Float64)).item() == Approx(std::log(4.0)));
  // The max is subtracted first: logsumexp([1000, 1000]) = 1000 + ln 2, no overflow.
  CHECK(logsumexp(tensor({1000, 1000}, {2})).item() == Approx(1000 + std::log(2.0)));
  // float32 sums accumulate in double: 2^24 + 16 ones is 16777232 (a float), whereas a float
  // accumulator would drop every +1 (2^24 + 1 rounds back to 2^24).
  std::vector<float> big(17, 1.0f);
  big[0] = 16777216.0f;
  CHECK(sum(from_vector(big, {17})).item() == 16777232.0);
}

TEST_CASE("reductions of scalars, empty dims and zero-size tensors", "[reduce]") {
  const Tensor s = full({}, 3.0, DType::Float64);
  CHECK(sum(s).item() == 3);
  CHECK(sum(s, {0}).shape() == Shape{});  // dim 0 / -1 of a scalar is accepted (PyTorch)
  CHECK(max(s, {-1}, true).item() == 3);
  CHECK(mean(s).item() == 3);
  CHECK_THROWS_WITH(sum(s, {1}), "[sum] dim 1 out of range for a tensor of rank 0");

  const Tensor e = zeros({0, 3});
  CHECK(sum(e, {0}).to_vector() == std::vector<float>{0, 0, 0});  // empty sums are 0
  CHECK(sum(e, {1}).shape() == Shape{0});
  CHECK(std::isnan(mean(e).item()));       // 0/0, as torch.mean of an empty tensor
  CHECK(max(e, {1}).shape() == Shape{0});  // reduces 3 elements into each of 0 outputs
  CHECK_THROWS_WITH(max(e, {0}),
                    "[max] cannot reduce over an empty dim of a tensor of shape (0,3)");
  CHECK_THROWS_WITH(min(e), "[min] cannot reduce over an empty dim of a tensor of shape (0,3)");
}

TEST_CASE("max and min propagate NaN and send its gradient to the NaN", "[reduce]") {
  Tensor x = tensor({1, kNaN, 3}, {3}, DType::Float64).requires_grad_();
  CHECK(std::isnan(max(x).item()));
  CHECK(std::isnan(min(x).item()));
  sum(max(x, {0})).backward();
  CHECK(values(x.grad()) == std::vector<double>{0, 1, 0});
  // A NaN first in a row must not be overwritten by later numbers either.
  CHECK(std::isnan(max(tensor({kNaN, 1, 2}, {3})).item()));
  // Ties split evenly: max([1, 3, 3]) sends 1/2 to each 3.
  Tensor t = tensor({1, 3, 3}, {3}, DType::Float64).requires_grad_();
  max(t).backward();
  CHECK(values(t.grad()) == std::vector<double>{0, 0.5, 0.5});
}

TEST_CASE("logsumexp handles infinite rows", "[reduce]") {
  const Tensor x = tensor({-kInf, -kInf, kInf, 1}, {2, 2}, DType::Float64);
  const auto v = values(logsumexp(x, {1}));
  CHECK(v[0] == -kInf);  // log(0)
  CHECK(v[1] == kInf);
}

TEST_CASE("sum_to reduces a broadcast gradient back to each operand's shape", "[reduce]") {
  const Tensor g = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64);
  CHECK(values(sum_to(g, {3})) == std::vector<double>{5, 7, 9});
  CHECK(values(sum_to(g, {1, 3})) == std::vector<double>{5, 7, 9});
  CHECK(values(sum_to(g, {2, 1})) == std::vector<double>{6, 15});
  CHECK(sum_to(g, {}).item() == 21);
  CHECK(sum_to(g, {2, 3}).is_same(g));
  CHECK_THROWS_WITH(sum_to(g, {4}), "[sum_to] cannot sum shape (2,3) to shape (4)");
  CHECK_THROWS_WITH(sum_to(g, {1, 2, 3}), "[sum_to] cannot sum shape (2,3) to shape (1,2,3)");
}

TEST_CASE("reduction errors name the op, the dims and the shapes", "[reduce]") {
  const Tensor x = ones({2, 3});
  CHECK_THROWS_WITH(sum(x, {2}), "[sum] dim 2 out of range for a tensor of rank 2");
  CHECK_THROWS_WITH(mean(x, {-3}), "[mean] dim -3 out of range for a tensor of rank 2");
  CHECK_THROWS_WITH(max(x, {1, -1}), "[max] dim -1 appears twice in the reduction dims (1,-1)");
  CHECK_THROWS_WITH(var(x, {0}, 2),
                    "[var] 2 elements with correction 2 leave no degrees of freedom");
}

// ---------------------------------------------------------------------------------------------
// Fast path = reference: both walks of the reduction kernel (lanes: kept inner dim contiguous;
// rows: reduced inner dim contiguous or strided) against a plain loop, float32 and float64.

namespace {

// Sum and max over `dims` (non-negative, all reduced when empty) by visiting each element once.
void reference_reduce(const Tensor& x, const Dims& dims, std::vector<double>& sums,
                      std::vector<double>& maxes) {
  std::vector<bool> reduced(static_cast<std::size_t>(x.dim()), dims.empty());
  for (auto d : dims) reduced[static_cast<std::size_t>(d)] = true;
  Shape out_shape;
  for (std::size_t d = 0; d < reduced.size(); ++d)
    if (!reduced[d]) out_shape.push_back(x.shape()[d]);
  sums.assign(static_cast<std::size_t>(numel_of(out_shape)), 0.0);
  maxes.assign(sums.size(), -kInf);
  pw::test::for_each_index(x.shape(), [&](const Shape& idx) {
    std::size_t o = 0;
    for (std::size_t d = 0; d < reduced.size(); ++d)
      if (!reduced[d])
        o = o * static_cast<std::size_t>(x.shape()[d]) + static_cast<std::size_t>(idx[d]);
    const double v = x.at(idx);
    sums[o] += v;
    maxes[o] = std::max(maxes[o], v);
  });
}

void check_reduce_against_loop(DType dt) {
  Generator gen(9);
  // (3, 70, 130) in three layouts: contiguous, permuted from (130, 3, 70), and sliced with steps.
  const std::vector<Tensor> inputs = {
      rand({3, 70, 130}, gen, dt, -1, 1),
      permute(rand({130, 3, 70}, gen, dt, -1, 1), {1, 2, 0}),
      slice(slice(rand({6, 70, 261}, gen, dt, -1, 1), 0, 0, 6, 2), 2, 1, 261, 2),
  };
  const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    for (const Dims& dims : std::vector<Dims>{{0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {}}) {
      const Tensor& x = inputs[k];
      std::vector<double> want_sum, want_max;
      reference_reduce(x, dims, want_sum, want_max);
      const auto got_sum = values(sum(x, dims)), got_max = values(max(x, dims));
      REQUIRE(got_sum.size() == want_sum.size());
      bool sums_ok = true, maxes_ok = true;
      for (std::size_t i = 0; i < want_sum.size(); ++i) {
        sums_ok =
            sums_ok && std::abs(got_sum[i] - want_sum[i]) <= tol * (1 + std::abs(want_sum[i]));
        maxes_ok = maxes_ok && got_max[i] == want_max[i];
      }
      INFO("layout " << k << " dims " << shape_str(dims) << " " << dtype_name(dt));
      CHECK(sums_ok);
      CHECK(maxes_ok);
    }
  }
}

}  // namespace

TEST_CASE("reduction kernels match a plain loop on strided inputs", "[reduce]") {
  testing::ScopedThreads threads(2);
  check_reduce_against_loop(DType::Float32);
  check_reduce_against_loop(DType::Float64);
}
