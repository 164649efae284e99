// dropout and drop_path (stochastic depth). The keep mask comes from bernoulli_keep
// (core/random.h): drawn sequentially from the generator (two 32-bit uniforms per 64-bit draw), so
// it depends only on the generator state and not on the thread count, or per sample inside a
// SampleStreams scope; the backward reuses the saved mask: dx = g * keep / (1 - p).
#include "ops/dropout.h"

#include <memory>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/blas.h"

namespace pw {
namespace {

// out = x * keep[i / group] * scale for contiguous x: group = 1 for dropout, the sample size
// for drop_path.
Tensor apply_keep(const Tensor& x, const std::vector<std::uint8_t>& keep, std::int64_t group,
                  double scale) {
  Tensor out = empty(x.shape(), x.dtype());
  PW_DISPATCH(x.dtype(), [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    const auto s = static_cast<scalar_t>(scale);
    parallel_for(x.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
      if (group == 1) {
        for (std::int64_t i = b; i < e; ++i) po[i] = keep[i] ? px[i] * s : scalar_t(0);
      } else {
        for (std::int64_t i = b; i < e; ++i) po[i] = keep[i / group] ? px[i] * s : scalar_t(0);
      }
    });
  });
  return out;
}

Tensor masked_op(const char* name, const Tensor& x_in, double p, Generator& gen, bool per_sample) {
  Tensor x = blas::dense(x_in);
  // Rows are the samples (dim 0); dropout draws every element of a row, drop_path one per row.
  const std::int64_t rows = x.dim() > 0 ? x.shape()[0] : 1;
  const std::int64_t per_row = x.numel() / std::max<std::int64_t>(rows, 1);
  const std::int64_t group = per_sample ? per_row : 1;
  auto keep = std::make_shared<std::vector<std::uint8_t>>(
      bernoulli_keep(name, rows, per_sample ? 1 : per_row, p, gen));
  const double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  Tensor out = apply_keep(x, *keep, std::max<std::int64_t>(group, 1), scale);
  if (needs_grad({x_in}))
    record(name, out, {x_in},
           [keep, group, scale](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {apply_keep(blas::dense(g), *keep, std::max<std::int64_t>(group, 1), scale)};
           });
  return out;
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  PW_CHECK(p >= 0 && p <= 1, "[dropout] p must be in [0, 1], got {}", p);
  if (!training || p == 0) return x;
  return masked_op("dropout", x, p, gen, false);
}

Tensor drop_path(const Tensor& x, double p, bool training, Generator& gen) {
  PW_CHECK(p >= 0 && p <= 1, "[drop_path] p must be in [0, 1], got {}", p);
  PW_CHECK(x.dim() >= 1, "[drop_path] needs a batch dim, got {}", shape_str(x.shape()));
  if (!training || p == 0) return x;
  return masked_op("drop_path", x, p, gen, true);
}

}  // namespace pw
