#include "nn/init.h"

#include <cmath>

#include "core/autograd.h"

namespace pw::nn::init {
namespace {

// Fills t (contiguous) with values from draw(); bumps its version.
template <typename Draw>
void fill_with(const Tensor& t, Draw draw) {
  PW_CHECK(t.is_contiguous(), "[init] tensor of shape {} is not contiguous", shape_str(t.shape()));
  PW_DISPATCH(t.dtype(), [&] {
    scalar_t* p = t.data<scalar_t>();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<scalar_t>(draw());
  });
  t.bump_version();
}

}  // namespace

void uniform_(const Tensor& t, double low, double high, Generator& gen) {
  fill_with(t, [&] { return low + (high - low) * gen.uniform(); });
}

void normal_(const Tensor& t, double mean, double std, Generator& gen) {
  fill_with(t, [&] { return mean + std * gen.normal(); });
}

void trunc_normal_(const Tensor& t, double std, Generator& gen, double mean, double a, double b) {
  PW_CHECK(a < b && std > 0, "[trunc_normal_] invalid bounds [{}, {}] or std {}", a, b, std);
  fill_with(t, [&] {
    for (;;) {
      const double v = mean + std * gen.normal();
      if (v >= a && v <= b) return v;
    }
  });
}

void constant_(const Tensor& t, double value) {
  fill_with(t, [&] { return value; });
}

void kaiming_normal_(const Tensor& t, Generator& gen) {
  normal_(t, 0.0, std::sqrt(2.0 / static_cast<double>(fan_in(t))), gen);
}

std::int64_t fan_in(const Tensor& weight) {
  PW_CHECK(weight.dim() >= 2, "[fan_in] weight of shape {} has fewer than 2 dims",
           shape_str(weight.shape()));
  return weight.numel() / weight.shape()[0];
}

}  // namespace pw::nn::init
