// Joining and splitting along a dim: cat, stack, split, chunk, pad. Every piece is written or
// read through a slice view, so the copies use copy_into's parallel strided loop and the
// backward rules are slices of the output gradient.
#include "ops/join.h"

#include <algorithm>

#include "core/autograd.h"
#include "ops/kernels.h"
#include "ops/shape.h"

namespace pw {

Tensor cat(const std::vector<Tensor>& xs, std::int64_t dim) {
  PW_CHECK(!xs.empty(), "[cat] expects a non-empty list of tensors");
  const Tensor& first = xs.front();
  PW_CHECK(first.dim() > 0, "[cat] zero-dimensional tensor (at position 0) cannot be concatenated");
  const auto d = static_cast<std::size_t>(wrap_dim(dim, first.dim(), "cat"));
  Shape shape = first.shape();
  shape[d] = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    PW_CHECK(x.dtype() == first.dtype(),
             "[cat] dtype mismatch: {} {} at position 0 vs {} {} at position {}",
             shape_str(first.shape()), dtype_name(first.dtype()), shape_str(x.shape()),
             dtype_name(x.dtype()), i);
    bool match = x.dim() == first.dim();
    for (std::size_t k = 0; match && k < shape.size(); ++k)
      match = k == d || x.shape()[k] == first.shape()[k];
    PW_CHECK(match, "[cat] shapes {} (position 0) and {} (position {}) differ outside dim {}",
             shape_str(first.shape()), shape_str(x.shape()), i, d);
    shape[d] += x.shape()[d];
  }
  Tensor out = empty(shape, first.dtype());
  const auto sd = static_cast<std::int64_t>(d);
  std::vector<std::int64_t> starts;  // where each input begins along dim
  std::int64_t at = 0;
  for (const auto& x : xs) {  // `out` needs no grad, so its slices are plain write targets
    starts.push_back(at);
    copy_into(slice(out, sd, at, at + x.shape()[d]), x);
    at += x.shape()[d];
  }
  if (needs_grad(xs))
    record("cat", out, xs, [starts, sd](const Tensor& g, const Node& n) -> std::vector<Tensor> {
      std::vector<Tensor> grads(starts.size());
      for (std::size_t i = 0; i < starts.size(); ++i)
        if (n.needs_input_grad(i))
          grads[i] =
              slice(g, sd, starts[i], starts[i] + n.input_shapes[i][static_cast<std::size_t>(sd)]);
      return grads;
    });
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, std::int64_t dim) {
  PW_CHECK(!xs.empty(), "[stack] expects a non-empty list of tensors");
  const auto d = wrap_dim(dim, xs.front().dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    PW_CHECK(xs[i].shape() == xs.front().shape(),
             "[stack] expects tensors of equal shape, got {} at position 0 and {} at position {}",
             shape_str(xs.front().shape()), shape_str(xs[i].shape()), i);
    parts.push_back(unsqueeze(xs[i], d));
  }
  return cat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, std::int64_t size, std::int64_t dim) {
  PW_CHECK(x.dim() > 0, "[split] cannot split a 0-dim tensor");
  const auto d = wrap_dim(dim, x.dim(), "split");
  const std::int64_t n = x.shape()[static_cast<std::size_t>(d)];
  PW_CHECK(size > 0 || (size == 0 && n == 0),
           "[split] split size must be positive, got {} for dim {} of shape {}", size, d,
           shape_str(x.shape()));
  if (n == 0) return {x};
  std::vector<Tensor> pieces;
  for (std::int64_t start = 0; start < n; start += size)
    pieces.push_back(slice(x, d, start, std::min(start + size, n)));
  return pieces;
}

std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, std::int64_t dim) {
  PW_CHECK(chunks > 0, "[chunk] number of chunks must be positive, got {}", chunks);
  PW_CHECK(x.dim() > 0, "[chunk] cannot chunk a 0-dim tensor");
  const auto d = wrap_dim(dim, x.dim(), "chunk");
  const std::int64_t n = x.shape()[static_cast<std::size_t>(d)];
  // torch.chunk: pieces of ceil(n / chunks), so there may be fewer than `chunks` pieces.
  if (n == 0) return std::vector<Tensor>(static_cast<std::size_t>(chunks), slice(x, d, 0, 0));
  return split(x, (n + chunks - 1) / chunks, d);
}

Tensor pad(const Tensor& x, const std::vector<std::int64_t>& pads, double value) {
  const std::int64_t rank = x.dim();
  PW_CHECK(pads.size() % 2 == 0 && static_cast<std::int64_t>(pads.size()) <= 2 * rank,
           "[pad] {} pad values for a tensor of shape {}: expected an even number, at most {}",
           pads.size(), shape_str(x.shape()), 2 * rank);
  Shape shape = x.shape();
  std::vector<std::int64_t> before(static_cast<std::size_t>(rank), 0);
  for (std::size_t k = 0; k < pads.size(); k += 2) {
    // F.pad order: (last dim before, last dim after, second-to-last before, ...)
    const auto d = static_cast<std::size_t>(rank - 1 - static_cast<std::int64_t>(k / 2));
    PW_CHECK(pads[k] >= 0 && pads[k + 1] >= 0,
             "[pad] negative padding ({}, {}) for dim {} of shape {} is not supported", pads[k],
             pads[k + 1], d, shape_str(x.shape()));
    before[d] = pads[k];
    shape[d] += pads[k] + pads[k + 1];
  }
  Tensor out = full(shape, value, x.dtype());
  // The interior view: x's extent along each dim, offset by the padding before it.
  auto interior = [before](Tensor t, const Shape& inner) {
    for (std::size_t d = 0; d < inner.size(); ++d)
      t = slice(t, static_cast<std::int64_t>(d), before[d], before[d] + inner[d]);
    return t;
  };
  copy_into(interior(out, x.shape()), x);
  if (needs_grad({x}))
    record("pad", out, {x},
           [interior, shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
             return {interior(g, shape)};
           });
  return out;
}

}  // namespace pw
