// max_pool2d: values and gradients by hand (ties, -inf padding, NaN), every kernel path
// (contiguous, channels-last, general strides) against a plain reference loop, float64
// gradchecks and the error messages.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "nn_test_util.h"
#include "op_test_helpers.h"
#include "ops/pool.h"
#include "ops/shape.h"
#include "scoped_threads.h"

using namespace pw;
using pw::testing::max_abs_diff;

namespace {

// The three layouts a (B, C, H, W) input can come in, each holding the values of `x`: as it is
// (contiguous), a view of (B, H, W, C) memory (channels-last, as conv2d returns) and a view with
// no unit stride along W (general strides: every other column of a wider tensor).
enum class Layout { Contiguous, ChannelsLast, Strided };

Tensor in_layout(const Tensor& x, Layout layout) {
  const Shape& s = x.shape();
  if (layout == Layout::Contiguous) return copy_contiguous(x);
  if (layout == Layout::ChannelsLast)
    return permute(copy_contiguous(permute(x, {0, 2, 3, 1})), {0, 3, 1, 2});
  Tensor wide = zeros({s[0], s[1], s[2], 2 * s[3]}, x.dtype());
  Tensor view = slice(wide, 3, 0, 2 * s[3], 2);
  copy_into(view, x);
  return view;
}

const char* name(Layout l) {
  return l == Layout::Contiguous     ? "contiguous"
         : l == Layout::ChannelsLast ? "channels-last"
                                     : "strided";
}

// F.max_pool2d by its definition, one output at a time: the window's first maximum in
// row-major order, padding skipped. Returns the output and dx for upstream gradient g.
struct Reference {
  Tensor out, dx;
};
Reference reference_pool(const Tensor& x, const Tensor& g, std::int64_t k, std::int64_t s,
                         std::int64_t p) {
  const std::int64_t B = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
  const auto xv = copy_contiguous(x, DType::Float64).to_vector<double>();
  const auto gv = copy_contiguous(g, DType::Float64).to_vector<double>();
  std::vector<double> out(static_cast<std::size_t>(B * C * Ho * Wo));
  std::vector<double> dx(xv.size(), 0.0);
  test::for_each_index({B, C, Ho, Wo}, [&](const Shape& i) {
    const std::int64_t plane = (i[0] * C + i[1]) * H * W;
    double m = -std::numeric_limits<double>::infinity();
    std::int64_t at = -1;
    for (std::int64_t ky = 0; ky < k; ++ky)
      for (std::int64_t kx = 0; kx < k; ++kx) {
        const std::int64_t y = i[2] * s - p + ky, xx = i[3] * s - p + kx;
        if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
        const double v = xv[static_cast<std::size_t>(plane + y * W + xx)];
        if (at < 0 || v > m) m = v, at = plane + y * W + xx;
      }
    const std::int64_t o = ((i[0] * C + i[1]) * Ho + i[2]) * Wo + i[3];
    out[static_cast<std::size_t>(o)] = m;
    dx[static_cast<std::size_t>(at)] += gv[static_cast<std::size_t>(o)];
  });
  return {from_vector(out, {B, C, Ho, Wo}), from_vector(dx, x.shape())};
}

}  // namespace

TEST_CASE("max_pool2d by hand: ties go to the first maximum, padding never wins", "[pool]") {
  // Channel 0 has a tie (the 9s at (1,1) and (1,2)); channel 1 = -(channel 0) - 1 is negative
  // everywhere, so a zero padding would win there and -inf padding does not.
  const std::vector<double> c0{1, 3, 2, 0, 4, 9, 9, 1, 0, 2, 8, 7, 5, 1, 6, 3};
  std::vector<double> values = c0;
  for (double v : c0) values.push_back(-v - 1);
  const Tensor x = from_vector(values, {1, 2, 4, 4});
  const Tensor g = from_vector(std::vector<double>{1, 2, 3, 4, 10, 20, 30, 40}, {1, 2, 2, 2});
  for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast, Layout::Strided}) {
    INFO(name(layout));
    SECTION(std::string("3x3 windows, stride 2, padding 1, ") + name(layout)) {
      Tensor in = in_layout(x, layout).requires_grad_();
      Tensor y = max_pool2d(in, 3, 2, 1);
      REQUIRE(y.shape() == Shape{1, 2, 2, 2});
      // Channel 0: every window holds the 9 at (1,1), found first also where (1,2) ties.
      // Channel 1: windows rows 0-1 x cols 0-1 -> -2 at (0,0); rows 0-1 x cols 1-3 -> -1 at
      // (0,3); rows 1-3 x cols 0-1 -> -1 at (2,0); rows 1-3 x cols 1-3 -> -2 at (1,3), before
      // the -2 at (3,1).
      CHECK(y.to_vector<double>() == std::vector<double>{9, 9, 9, 9, -2, -1, -1, -2});
      CHECK(is_channels_last(y) == (layout == Layout::ChannelsLast));
      y.backward(layout == Layout::ChannelsLast ? in_layout(g, layout) : g);
      std::vector<double> dx(32, 0.0);
      dx[5] = 1 + 2 + 3 + 4;             // channel 0, (1,1)
      dx[16 + 0] = 10, dx[16 + 3] = 20;  // channel 1, (0,0) and (0,3)
      dx[16 + 8] = 30, dx[16 + 7] = 40;  // channel 1, (2,0) and (1,3)
      CHECK(in.grad().to_vector<double>() == dx);
    }
    SECTION(std::string("2x2 windows, default stride, ") + name(layout)) {
      Tensor in = in_layout(x, layout).requires_grad_();
      Tensor y = max_pool2d(in, 2);
      // Channel 0: [1,3,4,9] -> 9, [2,0,9,1] -> 9, [0,2,5,1] -> 5, [8,7,6,3] -> 8; channel 1:
      // [-2,-4,-5,-10] -> -2, [-3,-1,-10,-2] -> -1, [-1,-3,-6,-2] -> -1, [-9,-8,-7,-4] -> -4.
      CHECK(y.to_vector<double>() == std::vector<double>{9, 9, 5, 8, -2, -1, -1, -4});
      y.backward(g);
      std::vector<double> dx(32, 0.0);
      dx[5] = 1, dx[6] = 2, dx[12] = 3, dx[10] = 4;
      dx[16 + 0] = 10, dx[16 + 3] = 20, dx[16 + 8] = 30, dx[16 + 15] = 40;
      CHECK(in.grad().to_vector<double>() == dx);
    }
  }
}

TEST_CASE("max_pool2d: a NaN in a window wins, as in PyTorch", "[pool]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = from_vector(std::vector<double>{1, nan, 3, 4}, {1, 1, 2, 2});
  for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
    const auto y = max_pool2d(in_layout(x, layout), 2).to_vector<double>();
    CHECK(std::isnan(y[0]));
  }
}

TEST_CASE("max_pool2d: every layout and shape agrees with the reference loop", "[pool]") {
  struct Case {
    Shape shape;
    std::int64_t k, s, p;
  };
  const std::vector<Case> cases{{{2, 3, 7, 5}, 3, 2, 1}, {{1, 4, 6, 6}, 2, 2, 0},
                                {{2, 2, 5, 8}, 3, 1, 1}, {{1, 5, 9, 7}, 4, 3, 2},
                                {{3, 1, 4, 4}, 1, 1, 0}, {{1, 3, 2, 3}, 3, 3, 1}};
  std::uint64_t seed = 1;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases)
      for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast, Layout::Strided}) {
        INFO(dtype_name(dt) << " " << shape_str(c.shape) << " k" << c.k << " s" << c.s << " p"
                            << c.p << " " << name(layout));
        Generator gen(seed++);
        const Tensor x = randn(c.shape, gen, dt);
        Tensor in = in_layout(x, layout).requires_grad_();
        Tensor y = max_pool2d(in, c.k, c.s, c.p);
        const Tensor g = randn(y.shape(), gen, dt);
        y.backward(g);
        const Reference ref = reference_pool(x, g, c.k, c.s, c.p);
        CHECK(max_abs_diff(y, ref.out) == 0);
        CHECK(max_abs_diff(in.grad(), ref.dx) < 1e-6);
      }
}

TEST_CASE("max_pool2d threaded kernels at a stem shape match the reference", "[pool]") {
  testing::ScopedThreads threads(2);
  Generator gen(5);
  const Tensor x = randn({4, 16, 16, 16}, gen);
  for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
    INFO(name(layout));
    Tensor in = in_layout(x, layout).requires_grad_();
    Tensor y = max_pool2d(in, 3, 2, 1);
    const Tensor g = in_layout(randn(y.shape(), gen), layout);
    // The backward rule returns dx in the input's layout, so that conv2d's backward reads it in
    // place (the leaf's .grad is a contiguous copy).
    const Tensor dx = y.grad_fn()->apply(g).at(0);
    CHECK(is_channels_last(dx) == (layout == Layout::ChannelsLast));
    CHECK(dx.is_contiguous() == (layout == Layout::Contiguous));
    y.backward(g);
    const Reference ref = reference_pool(x, g, 3, 2, 1);
    CHECK(max_abs_diff(y, ref.out) == 0);
    CHECK(max_abs_diff(in.grad(), ref.dx) < 1e-6);
    CHECK(max_abs_diff(dx, ref.dx) < 1e-6);
  }
}

TEST_CASE("max_pool2d", "[gradcheck]") {
  // Values at least 0.06 apart, so that a finite-difference step never changes a maximum.
  SECTION("3x3, stride 2, padding 1") {
    CHECK_GRADCHECK([](const auto& in) { return max_pool2d(in[0], 3, 2, 1); },
                    {test::spread_leaf({2, 2, 5, 5}, 1)});
  }
  SECTION("2x2, default stride, odd size") {
    CHECK_GRADCHECK([](const auto& in) { return max_pool2d(in[0], 2); },
                    {test::spread_leaf({1, 3, 5, 4}, 2)});
  }
  SECTION("overlapping windows, stride 1") {
    CHECK_GRADCHECK([](const auto& in) { return max_pool2d(in[0], 3, 1, 1); },
                    {test::spread_leaf({1, 2, 4, 4}, 3)});
  }
  SECTION("channels-last input") {
    CHECK_GRADCHECK(
        [](const auto& in) {
          return max_pool2d(permute(in[0], {0, 3, 1, 2}), 3, 2, 1);  // (B, H, W, C) memory
        },
        {test::spread_leaf({2, 5, 5, 3}, 4)});
  }
  SECTION("general strides") {
    CHECK_GRADCHECK([](const auto& in) { return max_pool2d(transpose(in[0], 1, 3), 2, 1, 1); },
                    {test::spread_leaf({1, 4, 3, 2}, 5)});
  }
}

TEST_CASE("max_pool2d errors name the op, the shapes and the bad argument", "[pool]") {
  const Tensor x = zeros({1, 2, 4, 4});
  CHECK_THROWS_WITH(max_pool2d(zeros({2, 4, 4}), 2),
                    "[max_pool2d] expected input (B, C, H, W), got (2,4,4)");
  CHECK_THROWS_WITH(max_pool2d(x, 0), "[max_pool2d] invalid kernel 0, stride 0 or padding 0");
  CHECK_THROWS_WITH(max_pool2d(x, 2, -1), "[max_pool2d] invalid kernel 2, stride -1 or padding 0");
  CHECK_THROWS_WITH(max_pool2d(x, 3, 2, 2),
                    "[max_pool2d] padding 2 is more than half the kernel 3");
  CHECK_THROWS_WITH(max_pool2d(x, 7, 1, 1),
                    "[max_pool2d] kernel 7x7 is larger than the input (1,2,4,4) padded by 1");
}
