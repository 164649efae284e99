// Tensor core: creation, views over shared storage, element access, printing, RNG, allocator.
#include <catch2/catch.hpp>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/tensor.h"

using namespace pw;

TEST_CASE("creation functions fill shapes with the expected values", "[tensor]") {
  Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.numel() == 6);
  CHECK(z.dtype() == DType::Float32);
  CHECK(z.to_vector() == std::vector<float>(6, 0.0f));
  CHECK(ones({4}, DType::Float64).to_vector<double>() == std::vector<double>(4, 1.0));
  CHECK(full({2}, 2.5).to_vector() == std::vector<float>{2.5f, 2.5f});
  CHECK(arange(0, 5).to_vector() == std::vector<float>{0, 1, 2, 3, 4});
  CHECK(arange(1, 2, 0.25, DType::Float64).to_vector<double>() ==
        std::vector<double>{1, 1.25, 1.5, 1.75});
  Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.at({1, 2}) == 6.0);
  CHECK(t.is_contiguous());
  CHECK_THROWS_WITH(from_vector(std::vector<float>{1, 2, 3}, {2, 2}),
                    "[from_vector] 3 values cannot fill shape (2,2)");
  CHECK_THROWS_WITH(t.item(), "[item] a tensor of shape (2,3) has 6 elements, not one");
}

TEST_CASE("random tensors are reproducible from the generator's seed", "[tensor]") {
  Generator g1(42), g2(42), g3(43);
  auto a = randn({100}, g1).to_vector();
  auto b = randn({100}, g2).to_vector();
  auto c = randn({100}, g3).to_vector();
  CHECK(a == b);
  CHECK(a != c);
  // Saving and restoring the state replays the same draws.
  Generator g(7);
  g.normal();  // leaves a cached spare value in the state
  auto state = g.state();
  auto x = rand({10}, g).to_vector();
  g.set_state(state);
  CHECK(rand({10}, g).to_vector() == x);
  // Moments of a large sample are close to N(0,1) and U(0,1).
  Generator g4(1);
  auto n = randn({100000}, g4, DType::Float64).to_vector<double>();
  double mean = 0, sq = 0;
  for (double v : n) mean += v, sq += v * v;
  mean /= n.size();
  CHECK(std::abs(mean) < 0.02);
  CHECK(std::abs(sq / n.size() - 1.0) < 0.02);
}

TEST_CASE("views share storage and copy_contiguous materialises strided values", "[tensor]") {
  Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  // A transposed view: shape (3,2), strides (1,3).
  Tensor tt = make_view(t, {3, 2}, {1, 3}, 0);
  CHECK_FALSE(tt.is_contiguous());
  CHECK(tt.shares_storage(t));
  CHECK(tt.to_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
  Tensor c = copy_contiguous(tt);
  CHECK(c.is_contiguous());
  CHECK_FALSE(c.shares_storage(t));
  CHECK(c.to_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
  // dtype conversion on copy.
  CHECK(copy_contiguous(t, DType::Float64).to_vector<double>()[5] == 6.0);
  // copy_into bumps the destination version (in-place write).
  auto v = c.version();
  copy_into(c, tt);
  CHECK(c.version() == v + 1);
}

TEST_CASE("tensors print like PyTorch with shape and dtype", "[tensor]") {
  Tensor t = tensor({1, 2, 3, 4}, {2, 2});
  CHECK(fmt::format("{}", t) ==
        "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=(2,2), dtype=float32)");
  std::string big = fmt::format("{}", zeros({2000}));
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.size() < 200);
}

TEST_CASE("the caching allocator hands freed blocks out again", "[tensor]") {
  { Tensor warm = empty({12345}); }
  const auto before = allocator_stats().system_allocations;
  for (int i = 0; i < 10; ++i) {
    Tensor t = empty({12345});
  }
  CHECK(allocator_stats().system_allocations == before);
}
