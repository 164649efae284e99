// matmul and linear: values by hand, gradients by finite differences, linear against the
// matmul + add composition it replaces, and the error messages.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "nn_test_util.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"

using namespace pw;
using namespace pw::testing;

namespace {

// out[i][j] = sum_k a[i][k] b[k][j] with plain loops, on 2-D tensors of any strides.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const std::int64_t M = a.shape()[0], K = a.shape()[1], N = b.shape()[1];
  std::vector<double> out(static_cast<std::size_t>(M * N), 0.0);
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t j = 0; j < N; ++j)
      for (std::int64_t k = 0; k < K; ++k) out[i * N + j] += a.at({i, k}) * b.at({k, j});
  return from_vector(out, {M, N});
}

}  // namespace

TEST_CASE("matmul of 2-D matrices matches the hand-computed product", "[matmul]") {
  // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[58,64],[139,154]] (by hand).
  Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = tensor({7, 8, 9, 10, 11, 12}, {3, 2});
  Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 2});
  CHECK(c.to_vector() == std::vector<float>{58, 64, 139, 154});
  // Transposed views go to BLAS with the transpose flag: b^T^T @ a^T^T is the same product.
  Tensor at = transpose(contiguous(transpose(a, 0, 1)), 0, 1);  // a with strides (1, 2)
  Tensor bt = transpose(contiguous(transpose(b, 0, 1)), 0, 1);
  CHECK(at.strides() == Shape{1, 2});
  CHECK(matmul(at, bt).to_vector() == std::vector<float>{58, 64, 139, 154});
}

TEST_CASE("matmul handles 1-D operands as torch.matmul", "[matmul]") {
  Tensor v = tensor({1, 2, 3}, {3});
  Tensor m = tensor({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor dot = matmul(v, v);  // 1 + 4 + 9
  CHECK(dot.shape().empty());
  CHECK(dot.item() == 14);
  Tensor vm = matmul(v, m);  // [1+6+15, 2+8+18]
  CHECK(vm.shape() == Shape{2});
  CHECK(vm.to_vector() == std::vector<float>{22, 28});
  Tensor mv = matmul(transpose(m, 0, 1), v);  // rows of m^T: (1,3,5).(1,2,3), (2,4,6).(1,2,3)
  CHECK(mv.to_vector() == std::vector<float>{22, 28});
  Tensor bv = matmul(reshape(arange(0, 12), {2, 2, 3}), v);  // batched matrix @ vector
  CHECK(bv.shape() == Shape{2, 2});
  CHECK(bv.to_vector() == std::vector<float>{8, 26, 44, 62});
}

TEST_CASE("batched matmul broadcasts batch dims and matches per-matrix products", "[matmul]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator g(1);
    Tensor a = randn({2, 1, 3, 4}, g, dt);
    Tensor b = randn({3, 4, 5}, g, dt);
    Tensor c = matmul(a, b);
    REQUIRE(c.shape() == Shape{2, 3, 3, 5});
    for (std::int64_t i = 0; i < 2; ++i)
      for (std::int64_t j = 0; j < 3; ++j) {
        Tensor ref = naive_matmul(reshape(slice(a, 0, i, i + 1), {3, 4}),
                                  reshape(slice(b, 0, j, j + 1), {4, 5}));
        Tensor got = reshape(slice(slice(c, 0, i, i + 1), 1, j, j + 1), {3, 5});
        CHECK(max_abs_diff(to(got, DType::Float64), to(ref, DType::Float64)) < 1e-5);
      }
    // A shared 2-D right operand folds the batch into one GEMM; same values as the loop.
    Tensor w = randn({4, 6}, g, dt);
    Tensor folded = matmul(a, w);
    CHECK(folded.shape() == Shape{2, 1, 3, 6});
    Tensor row = reshape(slice(a, 0, 1, 2), {3, 4});
    CHECK(max_abs_diff(to(reshape(slice(folded, 0, 1, 2), {3, 6}), DType::Float64),
                       to(naive_matmul(row, w), DType::Float64)) < 1e-5);
  }
}

TEST_CASE("matmul", "[gradcheck]") {
  auto f = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  SECTION("2-D") {
    CHECK(gradcheck(f, {leaf64({3, 4}, 1), leaf64({4, 2}, 2)}));
  }
  SECTION("batched with broadcast batch dims") {
    CHECK(gradcheck(f, {leaf64({2, 1, 2, 3}, 3), leaf64({3, 3, 2}, 4)}));
  }
  SECTION("shared 2-D right operand (folded batch)") {
    CHECK(gradcheck(f, {leaf64({2, 3, 4}, 5), leaf64({4, 2}, 6)}));
  }
  SECTION("transposed operands") {
    auto ft = [](const std::vector<Tensor>& in) {
      return matmul(transpose(in[0], -1, -2), transpose(in[1], -1, -2));
    };
    CHECK(gradcheck(ft, {leaf64({2, 4, 3}, 7), leaf64({2, 2, 4}, 8)}));
  }
  SECTION("1-D operands") {
    CHECK(gradcheck(f, {leaf64({3}, 9), leaf64({3}, 10)}));
    CHECK(gradcheck(f, {leaf64({3}, 11), leaf64({2, 3, 2}, 12)}));
    CHECK(gradcheck(f, {leaf64({2, 3}, 13), leaf64({3}, 14)}));
  }
}

TEST_CASE("matmul errors name the op and both shapes", "[matmul]") {
  CHECK_THROWS_WITH(matmul(ones({2, 3}), ones({4, 5})), "[matmul] cannot multiply (2,3) by (4,5)");
  CHECK_THROWS_WITH(matmul(ones({3}), ones({4})), "[matmul] cannot multiply (3) by (4)");
  CHECK_THROWS_WITH(matmul(ones({2, 2, 3}), ones({3, 3, 4})),
                    Catch::Contains("[matmul] cannot multiply (2,2,3) by (3,3,4)") &&
                        Catch::Contains("do not broadcast"));
  CHECK_THROWS_WITH(matmul(ones({2, 3}, DType::Float64), ones({3, 2})),
                    Catch::Contains("[matmul] dtype mismatch"));
}

TEST_CASE("linear computes x W^T + b", "[linear]") {
  // x = [[1,2],[3,4]], W = [[1,0],[1,1],[0,2]], b = [10,20,30]:
  // rows: [1, 3, 4] + b = [11, 23, 34] and [3, 7, 8] + b = [13, 27, 38] (by hand).
  Tensor x = tensor({1, 2, 3, 4}, {2, 2});
  Tensor w = tensor({1, 0, 1, 1, 0, 2}, {3, 2});
  Tensor b = tensor({10, 20, 30}, {3});
  CHECK(linear(x, w, b).to_vector() == std::vector<float>{11, 23, 34, 13, 27, 38});
  CHECK(linear(x, w).to_vector() == std::vector<float>{1, 3, 4, 3, 7, 8});
  CHECK(linear(tensor({1, 2}, {2}), w, b).shape() == Shape{3});
}

TEST_CASE("linear", "[gradcheck]") {
  SECTION("3-D input with bias") {
    auto f = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
    CHECK(gradcheck(f, {leaf64({2, 3, 4}, 1), leaf64({5, 4}, 2), leaf64({5}, 3)}));
  }
  SECTION("3-D input without bias") {
    auto f = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
    CHECK(gradcheck(f, {leaf64({2, 3, 4}, 4), leaf64({5, 4}, 5)}));
  }
  SECTION("non-contiguous input") {
    auto f = [](const std::vector<Tensor>& in) {
      return linear(transpose(in[0], 0, 1), in[1], in[2]);
    };
    CHECK(gradcheck(f, {leaf64({3, 2, 4}, 6), leaf64({2, 4}, 7), leaf64({2}, 8)}));
  }
  SECTION("only the weight needs a gradient") {
    Tensor x = leaf64({4, 3}, 9).detach();
    auto f = [x](const std::vector<Tensor>& in) { return linear(x, in[0], in[1]); };
    CHECK(gradcheck(f, {leaf64({2, 3}, 10), leaf64({2}, 11)}));
  }
}

TEST_CASE("linear matches matmul + add, forward and backward", "[linear]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-4 : 1e-10;
    std::vector<Tensor> in{leaf({4, 5, 16}, 1, dt), leaf({8, 16}, 2, dt), leaf({8}, 3, dt)};
    auto fused = run_with_grads([](const auto& v) { return linear(v[0], v[1], v[2]); }, in);
    auto composed = run_with_grads(
        [](const auto& v) { return add(matmul(v[0], transpose(v[1], 0, 1)), v[2]); }, in);
    INFO(dtype_name(dt));
    CHECK(compare(fused, composed, tol) == "");
  }
}

TEST_CASE("linear errors name the op and the shapes", "[linear]") {
  CHECK_THROWS_WITH(linear(ones({2, 3}), ones({4, 5})),
                    "[linear] input (2,3) does not match weight (4,5) (out_features, in_features)");
  CHECK_THROWS_WITH(linear(ones({2, 5}), ones({4, 5}), ones({3})),
                    "[linear] bias (3) does not match weight (4,5)");
}
