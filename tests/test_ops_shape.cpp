// Shape, join and index ops: gradients, view-versus-copy behaviour, hand-computed values,
// errors, and the copying kernels (contiguous, cat, pad, index_select, gather) against loops.
#include <catch2/catch.hpp>
#include <cmath>

#include "ops/broadcast.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/join.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "scoped_threads.h"
#include "tests/op_test_helpers.h"

using namespace pw;
using pw::test::leaf;

namespace {
std::vector<double> values(const Tensor& t) {
  return t.to_vector<double>();
}
Tensor f64(std::initializer_list<double> v, const Shape& shape) {
  return tensor(v, shape, DType::Float64);
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Layer 1: gradients. Each view is also checked on a non-contiguous input made inside fn.

TEST_CASE("gradcheck: reshape as a view and as a copy", "[gradcheck]") {
  Tensor x = leaf({2, 3, 4}, 60);
  CHECK_GRADCHECK([](const auto& in) { return reshape(in[0], {4, -1}); }, {x});
  // permute((2,3,4), (1,0,2)) -> (3,2,4): (3,2,2,2) is a view, (3,8) needs a copy.
  CHECK_GRADCHECK(
      [](const auto& in) {
        return reshape(permute(in[0], {1, 0, 2}), {3, 2, 2, 2});
      },
      {x});
  CHECK_GRADCHECK([](const auto& in) { return reshape(permute(in[0], {1, 0, 2}), {3, 8}); }, {x});
}

TEST_CASE("gradcheck: view of contiguous and of viewable strided inputs", "[gradcheck]") {
  Tensor x = leaf({2, 3, 4}, 61);
  CHECK_GRADCHECK([](const auto& in) { return view(in[0], {6, 4}); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return view(slice(in[0], 2, 0, 4, 2), {2, 3, 2, 1}); }, {x});
}

TEST_CASE("gradcheck: flatten of contiguous and transposed inputs", "[gradcheck]") {
  Tensor x = leaf({2, 3, 4}, 62);
  CHECK_GRADCHECK([](const auto& in) { return flatten(in[0], 1); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return flatten(transpose(in[0], 0, 2)); }, {x});
}

TEST_CASE("gradcheck: permute and transpose", "[gradcheck]") {
  Tensor x = leaf({2, 3, 4}, 63);
  CHECK_GRADCHECK([](const auto& in) { return permute(in[0], {2, 0, 1}); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return permute(transpose(in[0], 0, 1), {-1, 0, 1}); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return transpose(in[0], -1, 0); }, {x});
}

TEST_CASE("gradcheck: slice with steps and negative bounds", "[gradcheck]") {
  Tensor x = leaf({3, 7}, 64);
  CHECK_GRADCHECK([](const auto& in) { return slice(in[0], 1, 1, 7, 2); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return slice(in[0], -1, -5, -1, 3); }, {x});
  CHECK_GRADCHECK(
      [](const auto& in) { return slice(slice(transpose(in[0], 0, 1), 0, 2, 7, 2), 1, 1, 3); },
      {x});
}

TEST_CASE("gradcheck: expand to new and size-1 dims", "[gradcheck]") {
  Tensor x = leaf({3, 1}, 65);
  CHECK_GRADCHECK([](const auto& in) { return expand(in[0], {2, 3, 4}); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return expand(transpose(in[0], 0, 1), {2, -1, 3}); }, {x});
}

TEST_CASE("gradcheck: squeeze and unsqueeze", "[gradcheck]") {
  Tensor x = leaf({2, 1, 3}, 66);
  CHECK_GRADCHECK([](const auto& in) { return squeeze(in[0]); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return squeeze(in[0], 1); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return unsqueeze(transpose(in[0], 0, 2), -1); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return unsqueeze(in[0], 0); }, {x});
}

TEST_CASE("gradcheck: contiguous and clone of strided inputs", "[gradcheck]") {
  Tensor x = leaf({2, 3, 4}, 67);
  CHECK_GRADCHECK([](const auto& in) { return contiguous(permute(in[0], {2, 0, 1})); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return clone(slice(in[0], 2, 0, 4, 3)); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return clone(in[0]); }, {x});
}

TEST_CASE("gradcheck: to float32 and back", "[gradcheck]") {
  // Values k/1024 and eps = 1/1024: x +- eps is exact in float32, so the round trip through
  // float32 loses nothing and finite differences stay exact.
  std::vector<double> v;
  for (int k = -6; k < 6; ++k) v.push_back(k / 1024.0 * 37);
  Tensor x = from_vector(v, {3, 4}).requires_grad_();
  GradcheckOptions opts;
  opts.eps = 1.0 / 1024;
  CHECK_GRADCHECK(
      [](const auto& in) {
        return to(mul(to(transpose(in[0], 0, 1), DType::Float32), 3.0), DType::Float64);
      },
      {x}, opts);
}

TEST_CASE("gradcheck: cat along each dim of strided inputs", "[gradcheck]") {
  Tensor a = leaf({2, 3}, 68), b = leaf({2, 2}, 69), c = leaf({3, 2}, 70);
  CHECK_GRADCHECK(
      [](const auto& in) {
        return cat({in[0], in[1], transpose(in[2], 0, 1)}, 1);
      },
      {a, b, c});
  CHECK_GRADCHECK([](const auto& in) { return cat({transpose(in[0], 0, 1), in[1]}, -2); }, {a, c});
  CHECK_GRADCHECK([](const auto& in) { return cat({in[0], in[0]}, 0); }, {a});  // one leaf twice
}

TEST_CASE("gradcheck: stack at the front, middle and end", "[gradcheck]") {
  Tensor a = leaf({2, 3}, 71), b = leaf({3, 2}, 72);
  for (std::int64_t d : {0, 1, 2, -1}) {
    INFO("dim " << d);
    CHECK_GRADCHECK(
        [d](const auto& in) {
          return stack({in[0], transpose(in[1], 0, 1)}, d);
        },
        {a, b});
  }
}

TEST_CASE("gradcheck: split into unequal pieces", "[gradcheck]") {
  // (3,5) split by 2 along dim 1: pieces (3,2), (3,2), (3,1); each is weighted differently so
  // that a gradient reaching the wrong piece shows.
  Tensor x = leaf({3, 5}, 73);
  CHECK_GRADCHECK(
      [](const auto& in) {
        auto p = split(in[0], 2, 1);
        REQUIRE(p.size() == 3);
        return cat({mul(p[2], 3.0), p[0], mul(p[1], -2.0)}, 1);
      },
      {x});
  CHECK_GRADCHECK(
      [](const auto& in) {
        auto p = split(transpose(in[0], 0, 1), 2, 0);  // (2,3), (2,3), (1,3)
        return mul(p[1], sum(p[2]));
      },
      {x});
}

TEST_CASE("gradcheck: chunk", "[gradcheck]") {
  Tensor x = leaf({4, 3}, 74);
  CHECK_GRADCHECK(
      [](const auto& in) {
        auto p = chunk(in[0], 3, 0);  // ceil(4/3) = 2 rows each: 2 pieces
        REQUIRE(p.size() == 2);
        return sub(mul(p[0], 2.0), p[1]);
      },
      {x});
  CHECK_GRADCHECK(
      [](const auto& in) {
        auto p = chunk(in[0], 3, -1);  // three (4,1) columns
        return mul(p[0], p[2]);
      },
      {x});
}

TEST_CASE("gradcheck: index_select with repeated indices on every dim", "[gradcheck]") {
  Tensor x = leaf({3, 4}, 75);
  const Tensor idx = f64({2, 0, 2, 1, 2}, {5});  // 2 appears three times: its gradients add
  CHECK_GRADCHECK([&](const auto& in) { return index_select(in[0], 0, idx); }, {x});
  CHECK_GRADCHECK([&](const auto& in) { return index_select(in[0], 1, idx); }, {x});
  CHECK_GRADCHECK([&](const auto& in) { return index_select(transpose(in[0], 0, 1), -1, idx); },
                  {x});
  Tensor y = leaf({2, 3, 2}, 76);
  CHECK_GRADCHECK([&](const auto& in) { return index_select(in[0], 1, f64({1, 1}, {2})); }, {y});
}

TEST_CASE("gradcheck: gather with repeated indices along each dim", "[gradcheck]") {
  Tensor x = leaf({3, 4}, 77);
  // dim 1: index (3,3), smaller than x along dim 1 is allowed; repeats within rows.
  const Tensor i1 = f64({0, 3, 0, 2, 2, 1, 3, 3, 3}, {3, 3});
  CHECK_GRADCHECK([&](const auto& in) { return gather(in[0], 1, i1); }, {x});
  // dim 0: index (4,2), smaller than x along dim 1; repeats within columns.
  const Tensor i0 = f64({0, 2, 2, 2, 1, 0, 2, 1}, {4, 2});
  CHECK_GRADCHECK([&](const auto& in) { return gather(in[0], 0, i0); }, {x});
  // a transposed input (4,3) and a transposed index
  CHECK_GRADCHECK(
      [&](const auto& in) { return gather(transpose(in[0], 0, 1), 0, transpose(i1, 0, 1)); }, {x});
}

TEST_CASE("gradcheck: pad in F.pad order", "[gradcheck]") {
  Tensor x = leaf({2, 3}, 78);
  CHECK_GRADCHECK([](const auto& in) { return pad(in[0], {1, 2}); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return pad(in[0], {0, 1, 2, 0}, -1.5); }, {x});
  CHECK_GRADCHECK([](const auto& in) { return pad(transpose(in[0], 0, 1), {1, 1, 1, 1}); }, {x});
}

// ---------------------------------------------------------------------------------------------
// Views versus copies, and hand-computed values.

TEST_CASE("reshape views when strides allow and copies otherwise", "[shape]") {
  const Tensor x = arange(0, 24).requires_grad_(false);
  const Tensor x3 = reshape(x, {2, 3, 4});
  CHECK(x3.shares_storage(x));
  CHECK(x3.strides() == Shape{12, 4, 1});
  // permute (1,0,2): shape (3,2,4), strides (4,12,1). Splitting the last dim keeps a view
  // (PyTorch's computeStride: strides (4,12,2,1)); merging dims 1 and 2 cannot (12 != 4*1).
  const Tensor p = permute(x3, {1, 0, 2});
  const Tensor v = reshape(p, {3, 2, 2, 2});
  CHECK(v.shares_storage(x));
  CHECK(v.strides() == Shape{4, 12, 2, 1});
  const Tensor c = reshape(p, {3, 8});
  CHECK_FALSE(c.shares_storage(x));
  // Row 0 of p is x3[0][0] then x3[1][0]: 0 1 2 3 12 13 14 15.
  CHECK(slice(c, 0, 0, 1).to_vector() == std::vector<float>{0, 1, 2, 3, 12, 13, 14, 15});
  CHECK_THROWS_WITH(
      view(p, {3, 8}),
      "[view] shape (3,2,4) cannot be viewed as (3,8) with strides (4,12,1); use reshape");
  // Rows 0 and 2 of a (4,6) tensor: strides (12,1); (2,2,3) is a view, flattening is not.
  const Tensor rows = slice(reshape(x, {4, 6}), 0, 0, 4, 2);
  CHECK(reshape(rows, {2, 2, 3}).shares_storage(x));
  CHECK(reshape(rows, {2, 2, 3}).strides() == Shape{12, 3, 1});
  CHECK(flatten(rows).to_vector() == std::vector<float>{0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17});
  CHECK_FALSE(flatten(rows).shares_storage(x));
  // Scalars and size-1 dims.
  CHECK(reshape(full({}, 5.0), {1, 1}).shape() == Shape{1, 1});
  CHECK(reshape(ones({1, 1}), {}).shape() == Shape{});
  CHECK(flatten(full({}, 5.0)).shape() == Shape{1});
  CHECK(reshape(zeros({0, 3}), {3, -1, 2}).shape() == Shape{3, 0, 2});
}

TEST_CASE("slice handles negative bounds, steps and out-of-range bounds", "[shape]") {
  const Tensor x = arange(0, 10);
  CHECK(slice(x, 0, -3, 10).to_vector() == std::vector<float>{7, 8, 9});
  CHECK(slice(x, 0, 1, -1, 3).to_vector() == std::vector<float>{1, 4, 7});  // stop -1 = 9
  CHECK(slice(x, 0, -100, 100, 4).to_vector() == std::vector<float>{0, 4, 8});
  CHECK(slice(x, 0, 6, 2).numel() == 0);  // stop before start: empty
  CHECK(slice(x, 0, 9, 10, 5).to_vector() == std::vector<float>{9});
  const Tensor s = slice(reshape(x, {2, 5}), 1, 1, 5, 2);
  CHECK(s.strides() == Shape{5, 2});
  CHECK(s.offset() == 1);
  CHECK(s.to_vector() == std::vector<float>{1, 3, 6, 8});
  CHECK_THROWS_WITH(slice(x, 0, 0, 5, 0), "[slice] step must be positive, got 0");
  CHECK_THROWS_WITH(slice(x, 0, 5, 0, -1), "[slice] step must be positive, got -1");
  CHECK_THROWS_WITH(slice(x, 1, 0, 1), "[slice] dim 1 out of range for a tensor of rank 1");
  CHECK_THROWS_WITH(slice(full({}, 1.0), 0, 0, 1), "[slice] cannot slice a 0-dim tensor");
}

TEST_CASE("permute, transpose, expand, squeeze, unsqueeze: shapes, strides and errors", "[shape]") {
  const Tensor x = zeros({2, 3, 4});
  CHECK(permute(x, {2, 0, 1}).shape() == Shape{4, 2, 3});
  CHECK(permute(x, {2, 0, 1}).strides() == Shape{1, 12, 4});
  CHECK(transpose(x, 0, -1).strides() == Shape{1, 4, 12});
  CHECK(transpose(full({}, 1.0), 0, -1).shape() == Shape{});
  CHECK_THROWS_WITH(permute(x, {0, 0, 1}), "[permute] order (0,0,1) repeats dim 0");
  CHECK_THROWS_WITH(permute(x, {0, 1}),
                    "[permute] order (0,1) does not match a tensor of shape (2,3,4)");
  CHECK_THROWS_WITH(permute(x, {0, 1, 3}), "[permute] dim 3 out of range for a tensor of rank 3");
  CHECK_THROWS_WITH(transpose(x, 0, 5), "[transpose] dim 5 out of range for a tensor of rank 3");

  const Tensor e = expand(ones({3, 1}), {2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(expand(ones({3, 1}), {-1, 2}).shape() == Shape{3, 2});
  CHECK_THROWS_WITH(expand(ones({3, 1}), {2, 4}), "[expand] cannot expand shape (3,1) to (2,4)");
  CHECK_THROWS_WITH(expand(ones({3, 1}), {1}), "[expand] cannot expand shape (3,1) to (1)");
  CHECK_THROWS_WITH(expand(ones({3}), {-1, 3}),
                    Catch::Contains("[expand] cannot expand shape (3) to (-1,3)"));

  CHECK(squeeze(zeros({1, 2, 1, 3})).shape() == Shape{2, 3});
  CHECK(squeeze(zeros({1, 2}), 1).shape() == Shape{1, 2});  // size 2: unchanged
  CHECK(squeeze(zeros({1, 2}), -2).shape() == Shape{2});
  CHECK(unsqueeze(zeros({2, 3}), -1).shape() == Shape{2, 3, 1});
  CHECK(unsqueeze(zeros({2, 3}), 1).shape() == Shape{2, 1, 3});
  CHECK(unsqueeze(full({}, 1.0), 0).shape() == Shape{1});
  CHECK_THROWS_WITH(unsqueeze(zeros({2, 3}), 3),
                    "[unsqueeze] dim 3 out of range for a tensor of rank 3");
  // unsqueeze of a transposed tensor stays a view.
  const Tensor t = transpose(zeros({3, 2}), 0, 1);
  CHECK(unsqueeze(t, 1).shares_storage(t));

  CHECK_THROWS_WITH(reshape(x, {5, -1}),
                    "[reshape] shape (5,-1) is invalid for input of shape (2,3,4)");
  CHECK_THROWS_WITH(reshape(x, {-1, -1}), "[reshape] only one dim can be -1 in (-1,-1)");
  CHECK_THROWS_WITH(view(x, {7}), "[view] shape (7) is invalid for input of shape (2,3,4)");
}

TEST_CASE("contiguous, clone and to", "[shape]") {
  const Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(contiguous(x).is_same(x));
  const Tensor t = transpose(x, 0, 1);
  const Tensor c = contiguous(t);
  CHECK(c.is_contiguous());
  CHECK_FALSE(c.shares_storage(x));
  CHECK(c.to_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK_FALSE(clone(x).shares_storage(x));
  const Tensor d = to(x, DType::Float64);
  CHECK(d.dtype() == DType::Float64);
  CHECK(values(d) == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(to(x, DType::Float32).is_same(x));
  // The gradient of `to` comes back in the input's dtype.
  Tensor a = tensor({1, 2}, {2}).requires_grad_();
  sum(mul(to(a, DType::Float64), 3.0)).backward();
  CHECK(a.grad().dtype() == DType::Float32);
  CHECK(a.grad().to_vector() == std::vector<float>{3, 3});
}

TEST_CASE("cat and stack: values, views of strided inputs, errors", "[shape]") {
  const Tensor a = tensor({1, 2, 3, 4}, {2, 2}), b = tensor({5, 6}, {1, 2});
  // along dim 0: rows [1 2], [3 4], [5 6]
  CHECK(cat({a, b}, 0).to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  // along dim 1 with b^T (2,1): rows [1 2 5], [3 4 6]
  CHECK(cat({a, transpose(b, 0, 1)}, -1).to_vector() == std::vector<float>{1, 2, 5, 3, 4, 6});
  CHECK(cat({a, zeros({0, 2})}, 0).shape() == Shape{2, 2});  // empty pieces add nothing
  // stack at dim 1: out[i][k] = input k's row i: [[1 2],[1 2]], [[3 4],[3 4]] for a with a
  const Tensor s = stack({a, mul(a, 10.0)}, 1);
  CHECK(s.shape() == Shape{2, 2, 2});
  CHECK(s.to_vector() == std::vector<float>{1, 2, 10, 20, 3, 4, 30, 40});
  CHECK(stack({full({}, 1.0), full({}, 2.0)}, 0).to_vector() == std::vector<float>{1, 2});

  CHECK_THROWS_WITH(cat({a, ones({2, 3})}, 0),
                    "[cat] shapes (2,2) (position 0) and (2,3) (position 1) differ outside dim 0");
  CHECK_THROWS_WITH(cat({a, ones({2})}, 0),
                    "[cat] shapes (2,2) (position 0) and (2) (position 1) differ outside dim 0");
  CHECK_THROWS_WITH(
      cat({a, ones({2, 2}, DType::Float64)}, 0),
      "[cat] dtype mismatch: (2,2) float32 at position 0 vs (2,2) float64 at position 1");
  CHECK_THROWS_WITH(cat({a}, 2), "[cat] dim 2 out of range for a tensor of rank 2");
  CHECK_THROWS_WITH(cat({}, 0), "[cat] expects a non-empty list of tensors");
  CHECK_THROWS_WITH(cat({full({}, 1.0)}, 0),
                    "[cat] zero-dimensional tensor (at position 0) cannot be concatenated");
  CHECK_THROWS_WITH(
      stack({a, b}, 0),
      "[stack] expects tensors of equal shape, got (2,2) at position 0 and (1,2) at position 1");
  CHECK_THROWS_WITH(stack({a, a}, 3), "[stack] dim 3 out of range for a tensor of rank 3");
}

TEST_CASE("split and chunk return views with torch's piece sizes", "[shape]") {
  const Tensor x = arange(0, 5);
  auto p = split(x, 2, 0);
  REQUIRE(p.size() == 3);
  CHECK(p[0].to_vector() == std::vector<float>{0, 1});
  CHECK(p[2].to_vector() == std::vector<float>{4});
  CHECK(p[1].shares_storage(x));
  CHECK(split(x, 5, 0).size() == 1);
  CHECK(split(x, 9, -1).size() == 1);
  CHECK(chunk(x, 3, 0).size() == 3);             // ceil(5/3) = 2: sizes 2, 2, 1
  CHECK(chunk(arange(0, 6), 4, 0).size() == 3);  // ceil(6/4) = 2: sizes 2, 2, 2
  CHECK(chunk(arange(0, 6), 4, 0)[2].to_vector() == std::vector<float>{4, 5});
  CHECK(chunk(zeros({0, 2}), 2, 0).size() == 2);  // torch returns `chunks` empty pieces
  CHECK(split(zeros({0, 2}), 3, 0).size() == 1);
  CHECK_THROWS_WITH(split(x, 0, 0),
                    "[split] split size must be positive, got 0 for dim 0 of shape (5)");
  CHECK_THROWS_WITH(chunk(x, 0, 0), "[chunk] number of chunks must be positive, got 0");
  CHECK_THROWS_WITH(split(x, 1, 1), "[split] dim 1 out of range for a tensor of rank 1");
}

TEST_CASE("index_select and gather: values and index validation", "[shape]") {
  const Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  // columns 2, 0, 2 of each row: [3 1 3], [6 4 6]
  CHECK(index_select(x, 1, tensor({2, 0, 2}, {3})).to_vector() ==
        std::vector<float>{3, 1, 3, 6, 4, 6});
  CHECK(index_select(x, 0, tensor({1}, {1})).to_vector() == std::vector<float>{4, 5, 6});
  CHECK(index_select(x, 0, full({}, 1.0)).shape() == Shape{1, 3});
  CHECK(index_select(x, 0, zeros({0})).shape() == Shape{0, 3});
  // torch.gather's documented example: gather([[1,2],[3,4]], 1, [[0,0],[1,0]]) = [[1,1],[4,3]].
  const Tensor g = tensor({1, 2, 3, 4}, {2, 2});
  CHECK(gather(g, 1, tensor({0, 0, 1, 0}, {2, 2})).to_vector() == std::vector<float>{1, 1, 4, 3});
  // dim 0: out[i][j] = x[idx[i][j]][j]; idx [[1,0,1]] picks 4, 2, 6.
  CHECK(gather(x, 0, tensor({1, 0, 1}, {1, 3})).to_vector() == std::vector<float>{4, 2, 6});

  CHECK_THROWS_WITH(index_select(x, 1, tensor({0, 3}, {2})),
                    "[index_select] index 3 is out of range for dim 1 of size 3");
  CHECK_THROWS_WITH(index_select(x, 0, tensor({-1}, {1})),
                    "[index_select] index -1 is out of range for dim 0 of size 2");
  CHECK_THROWS_WITH(index_select(x, 0, tensor({0.5}, {1})),
                    "[index_select] index 0.5 is not an integer");
  CHECK_THROWS_WITH(index_select(x, 0, zeros({1, 1})),
                    "[index_select] index must be 0-D or 1-D, got shape (1,1)");
  CHECK_THROWS_WITH(index_select(x, 2, zeros({1})),
                    "[index_select] dim 2 out of range for a tensor of rank 2");
  CHECK_THROWS_WITH(gather(x, 1, tensor({0, 7}, {1, 2})),
                    "[gather] index 7 is out of range for dim 1 of size 3");
  CHECK_THROWS_WITH(gather(x, 1, tensor({1.25}, {1, 1})), "[gather] index 1.25 is not an integer");
  CHECK_THROWS_WITH(
      gather(x, 1, zeros({3, 1})),
      "[gather] index of shape (3,1) does not fit input of shape (2,3) outside dim 1");
  CHECK_THROWS_WITH(gather(x, 1, zeros({2})),
                    "[gather] index of shape (2) does not fit input of shape (2,3) outside dim 1");
}

TEST_CASE("pad: F.pad pair order, fill value and errors", "[shape]") {
  const Tensor x = tensor({1, 2}, {1, 2});
  // last dim (1 before, 2 after): [0 1 2 0 0]
  CHECK(pad(x, {1, 2}).to_vector() == std::vector<float>{0, 1, 2, 0, 0});
  // last dim (1, 0), then dim 0 (0, 1), value 9: [[9 1 2], [9 9 9]]
  const Tensor p = pad(x, {1, 0, 0, 1}, 9.0);
  CHECK(p.shape() == Shape{2, 3});
  CHECK(p.to_vector() == std::vector<float>{9, 1, 2, 9, 9, 9});
  CHECK(pad(x, {}).to_vector() == std::vector<float>{1, 2});
  CHECK(pad(zeros({0, 2}), {0, 0, 1, 0}, 5.0).to_vector() == std::vector<float>{5, 5});
  CHECK_THROWS_WITH(
      pad(x, {1}),
      "[pad] 1 pad values for a tensor of shape (1,2): expected an even number, at most 4");
  CHECK_THROWS_WITH(
      pad(x, {0, 0, 0, 0, 1, 1}),
      "[pad] 6 pad values for a tensor of shape (1,2): expected an even number, at most 4");
  CHECK_THROWS_WITH(pad(x, {-1, 0}),
                    "[pad] negative padding (-1, 0) for dim 1 of shape (1,2) is not supported");
}

// ---------------------------------------------------------------------------------------------
// Fast path = reference: the copying kernels against plain loops over logical indices, on
// strided float32 and float64 inputs large enough to be split across threads.

namespace {

void check_copy_kernels_against_loops(DType dt) {
  Generator gen(11);
  const Tensor a = permute(rand({40, 30, 33}, gen, dt), {2, 0, 1});  // (33,40,30)
  const Tensor b = slice(rand({33, 40, 61}, gen, dt), 2, 1, 61, 3);  // (33,40,20)
  bool ok = true;

  const Tensor c = contiguous(a);
  pw::test::for_each_index(a.shape(), [&](const Shape& i) { ok = ok && c.at(i) == a.at(i); });
  CHECK(ok);

  const Tensor joined = cat({a, b}, 2);  // (33,40,50)
  pw::test::for_each_index(joined.shape(), [&](const Shape& i) {
    const double want = i[2] < 30 ? a.at(i) : b.at({i[0], i[1], i[2] - 30});
    ok = ok && joined.at(i) == want;
  });
  CHECK(ok);

  const Tensor padded = pad(b, {2, 1, 0, 3}, -7.0);  // (33,43,23)
  pw::test::for_each_index(padded.shape(), [&](const Shape& i) {
    const bool inside = i[1] < 40 && i[2] >= 2 && i[2] < 22;
    ok = ok && padded.at(i) == (inside ? b.at({i[0], i[1], i[2] - 2}) : -7.0);
  });
  CHECK(ok);

  std::vector<double> iv;
  for (int k = 0; k < 50; ++k) iv.push_back(static_cast<double>((k * 7) % 40));
  const Tensor idx = from_vector(iv, {50});
  const Tensor sel = index_select(a, 1, idx);  // (33,50,30)
  pw::test::for_each_index(sel.shape(), [&](const Shape& i) {
    ok =
        ok && sel.at(i) ==
                  a.at({i[0], static_cast<std::int64_t>(iv[static_cast<std::size_t>(i[1])]), i[2]});
  });
  CHECK(ok);

  // gather along dim 2 with an index (33,40,25) of values (i + 3j + 5k) mod 30
  std::vector<double> gv;
  pw::test::for_each_index({33, 40, 25}, [&](const Shape& i) {
    gv.push_back(static_cast<double>((i[0] + 3 * i[1] + 5 * i[2]) % 30));
  });
  const Tensor gidx = from_vector(gv, {33, 40, 25});
  const Tensor gat = gather(a, 2, gidx);
  pw::test::for_each_index(gat.shape(), [&](const Shape& i) {
    ok = ok && gat.at(i) == a.at({i[0], i[1], static_cast<std::int64_t>(gidx.at(i))});
  });
  CHECK(ok);
}

}  // namespace

TEST_CASE("copying kernels match plain loops on strided inputs", "[shape]") {
  testing::ScopedThreads threads(2);
  check_copy_kernels_against_loops(DType::Float32);
  check_copy_kernels_against_loops(DType::Float64);
}

TEST_CASE("gather and index_select backward match a plain scatter-add loop", "[shape]") {
  testing::ScopedThreads threads(2);
  // Backward of sum(w * gather(x, 1, idx)) is a scatter-add of w; repeated indices collide.
  // 600*60 positions: above kParallelGrain, so the scatter runs on several threads.
  Generator gen(12);
  const Tensor x = rand({600, 40}, gen, DType::Float64).requires_grad_();
  const Tensor w = rand({600, 60}, gen, DType::Float64);
  std::vector<double> iv;
  for (int k = 0; k < 600 * 60; ++k) iv.push_back(static_cast<double>((k * 13) % 40));
  const Tensor idx = from_vector(iv, {600, 60});
  sum(mul(gather(x, 1, idx), w)).backward();
  std::vector<double> want(600 * 40, 0.0);
  for (std::int64_t i = 0; i < 600; ++i)
    for (std::int64_t j = 0; j < 60; ++j)
      want[static_cast<std::size_t>(
          i * 40 + static_cast<std::int64_t>(iv[static_cast<std::size_t>(i * 60 + j)]))] +=
          w.at({i, j});
  const auto got = values(x.grad());
  bool ok = true;
  for (std::size_t k = 0; k < want.size(); ++k) ok = ok && std::abs(got[k] - want[k]) < 1e-12;
  CHECK(ok);

  // index_select along dim 0 of a (40,700) tensor with rows picked 2..3 times each
  const Tensor y = rand({40, 700}, gen, DType::Float64).requires_grad_();
  std::vector<double> rows;
  for (int k = 0; k < 100; ++k) rows.push_back(static_cast<double>((k * 11) % 40));
  const Tensor w2 = rand({100, 700}, gen, DType::Float64);
  sum(mul(index_select(y, 0, from_vector(rows, {100})), w2)).backward();
  std::vector<double> want2(40 * 700, 0.0);
  for (std::int64_t k = 0; k < 100; ++k)
    for (std::int64_t j = 0; j < 700; ++j)
      want2[static_cast<std::size_t>(
          static_cast<std::int64_t>(rows[static_cast<std::size_t>(k)]) * 700 + j)] += w2.at({k, j});
  const auto got2 = values(y.grad());
  ok = true;
  for (std::size_t k = 0; k < want2.size(); ++k) ok = ok && std::abs(got2[k] - want2[k]) < 1e-12;
  CHECK(ok);
}
