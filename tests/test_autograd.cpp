// The autograd engine: accumulation, retain_graph, release, in-place detection, deep graphs.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

using namespace pw;

TEST_CASE("gradients accumulate across uses and across backward calls", "[autograd]") {
  Tensor x = tensor({1, 2, 3}, {3}).requires_grad_();
  Tensor y = sum(mul(x, x) + x);  // d/dx = 2x + 1
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<float>{3, 5, 7});
  sum(mul(x, 2.0)).backward();  // accumulates 2
  CHECK(x.grad().to_vector() == std::vector<float>{5, 7, 9});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("a released graph cannot be backwarded twice unless retained", "[autograd]") {
  Tensor x = tensor({1, 2}, {2}).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().at({0}) == Approx(2 * std::exp(1.0)));
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("backward through the graph a second time"));
}

TEST_CASE("modifying a saved tensor in place is detected", "[autograd]") {
  Tensor a = tensor({1, 2}, {2}).requires_grad_();
  Tensor b = tensor({3, 4}, {2});
  Tensor y = sum(mul(a, b));
  mul_(b, 2.0);  // b was saved by mul for a's gradient
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("[backward of mul]") &&
                                      Catch::Contains("saved for backward was modified in place"));
}

TEST_CASE("in-place ops on tensors that require grad are refused under grad mode", "[autograd]") {
  Tensor a = tensor({1, 2}, {2}).requires_grad_();
  CHECK_THROWS_WITH(mul_(a, 2.0), Catch::Contains("[mul_] in-place change"));
  NoGradGuard no_grad;
  mul_(a, 2.0);
  CHECK(a.to_vector() == std::vector<float>{2, 4});
}

TEST_CASE("no-grad mode records nothing and detach cuts the graph", "[autograd]") {
  Tensor x = tensor({1, 2}, {2}).requires_grad_();
  {
    NoGradGuard no_grad;
    Tensor y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  Tensor d = mul(x, 3.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK_THROWS_WITH(sum(d).backward(), Catch::Contains("does not require grad"));
}

TEST_CASE("backward of a non-scalar needs an explicit gradient of the right shape", "[autograd]") {
  Tensor x = tensor({1, 2}, {2}).requires_grad_();
  Tensor y = mul(x, 2.0);
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("single-element output"));
  CHECK_THROWS_WITH(y.backward(ones({3})),
                    "[backward] gradient of shape (3) for an output of shape (2)");
  y.backward(tensor({1, 10}, {2}));
  CHECK(x.grad().to_vector() == std::vector<float>{2, 20});
}

TEST_CASE("a 100,000-op chain backwards and is destroyed without recursion", "[autograd]") {
  Tensor x = tensor({1.0}, {1}, DType::Float64).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add(y, 1e-5);
  sum(y).backward();
  CHECK(x.grad().item() == 1.0);
  Tensor z = x;
  for (int i = 0; i < 100000; ++i) z = mul(z, 1.0);
  z = Tensor();  // destroying the chain must not overflow the stack either
  SUCCEED();
}

TEST_CASE("gradcheck catches a wrong backward rule", "[autograd]") {
  // A deliberately wrong op: forward x^2, backward claims 3x.
  auto wrong_square = [](const std::vector<Tensor>& in) {
    const Tensor& x = in[0];
    Tensor out;
    {
      NoGradGuard g;
      out = mul(x, x);
    }
    if (needs_grad({x}))
      record("wrong_square", out, {x},
             [sx = SavedTensor(x)](const Tensor& g, const Node&) -> std::vector<Tensor> {
               return {mul(g, mul(sx.get(), 3.0))};
             });
    return out;
  };
  Tensor x = tensor({0.5, -1.0, 2.0}, {3}, DType::Float64).requires_grad_();
  CHECK_FALSE(gradcheck(wrong_square, {x}).ok);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0]); }, {x}).ok);
}
