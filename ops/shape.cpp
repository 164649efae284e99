#include "ops/shape.h"

#include <numeric>

#include "core/autograd.h"

namespace pw {
namespace {

Shape infer_shape(const Shape& shape, std::int64_t numel, const char* op, const Shape& from) {
  Shape out = shape;
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      PW_CHECK(infer < 0, "[{}] only one dim can be -1 in {}", op, shape_str(shape));
      infer = static_cast<std::int64_t>(i);
    } else {
      PW_CHECK(out[i] >= 0, "[{}] invalid shape {}", op, shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    PW_CHECK(known != 0 && numel % known == 0, "[{}] shape {} is invalid for input of shape {}", op,
             shape_str(shape), shape_str(from));
    out[static_cast<std::size_t>(infer)] = numel / known;
  }
  PW_CHECK(numel_of(out) == numel, "[{}] shape {} is invalid for input of shape {}", op,
           shape_str(shape), shape_str(from));
  return out;
}

// Strides for viewing x with `shape` without a copy, or empty when impossible (PyTorch's
// computeStride: each group of old dims that maps onto new dims must be contiguous in itself).
Shape view_strides(const Tensor& x, const Shape& shape) {
  if (x.is_contiguous()) return contiguous_strides(shape);
  const Shape& os = x.shape();
  const Shape& ost = x.strides();
  Shape st(shape.size());
  std::int64_t view_d = static_cast<std::int64_t>(shape.size()) - 1;
  std::int64_t chunk_base = ost.empty() ? 1 : ost.back();
  std::int64_t tensor_numel = 1, view_numel = 1;
  for (std::int64_t d = static_cast<std::int64_t>(os.size()) - 1; d >= 0; --d) {
    tensor_numel *= os[d];
    if (d == 0 || (os[d - 1] != 1 && ost[d - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        st[view_d] = view_numel * chunk_base;
        view_numel *= shape[view_d];
        view_d--;
      }
      if (view_numel != tensor_numel) return {};
      if (d > 0) {
        chunk_base = ost[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return {};
  return st;
}

Tensor view_or_copy(const Tensor& x, const Shape& shape, bool allow_copy, const char* op) {
  const Shape target = infer_shape(shape, x.numel(), op, x.shape());
  Shape st = view_strides(x, target);
  Tensor out;
  if (!st.empty() || target.empty()) {
    out = make_view(x, target, st.empty() ? Shape{} : st, x.offset());
  } else {
    PW_CHECK(allow_copy, "[view] shape {} cannot be viewed as {} with strides {}; use reshape",
             shape_str(x.shape()), shape_str(target), shape_str(x.strides()));
    out = copy_contiguous(x);
    out = make_view(out, target, contiguous_strides(target), 0);
  }
  if (needs_grad({x}))
    record(op, out, {x}, [shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
      return {reshape(g, shape)};
    });
  return out;
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  return view_or_copy(x, shape, true, "reshape");
}
Tensor view(const Tensor& x, const Shape& shape) {
  return view_or_copy(x, shape, false, "view");
}

Tensor flatten(const Tensor& x, std::int64_t start_dim, std::int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  const auto s = wrap_dim(start_dim, x.dim(), "flatten"), e = wrap_dim(end_dim, x.dim(), "flatten");
  PW_CHECK(s <= e, "[flatten] start_dim {} is after end_dim {}", start_dim, end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  std::int64_t n = 1;
  for (auto d = s; d <= e; ++d) n *= x.shape()[d];
  shape.push_back(n);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor permute(const Tensor& x, const Shape& order) {
  const std::int64_t rank = x.dim();
  PW_CHECK(static_cast<std::int64_t>(order.size()) == rank,
           "[permute] order {} does not match a tensor of shape {}", shape_str(order),
           shape_str(x.shape()));
  Shape shape(order.size()), strides(order.size()), inverse(order.size());
  std::vector<bool> seen(order.size(), false);
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto d = static_cast<std::size_t>(wrap_dim(order[i], rank, "permute"));
    PW_CHECK(!seen[d], "[permute] order {} repeats dim {}", shape_str(order), d);
    seen[d] = true;
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
    inverse[d] = static_cast<std::int64_t>(i);
  }
  Tensor out = make_view(x, shape, strides, x.offset());
  if (needs_grad({x}))
    record("permute", out, {x}, [inverse](const Tensor& g, const Node&) -> std::vector<Tensor> {
      return {permute(g, inverse)};
    });
  return out;
}

Tensor transpose(const Tensor& x, std::int64_t dim0, std::int64_t dim1) {
  const auto d0 = wrap_dim(dim0, x.dim(), "transpose"), d1 = wrap_dim(dim1, x.dim(), "transpose");
  if (x.dim() == 0) return x;  // transpose(0, 0) of a scalar, as PyTorch allows
  Shape order(static_cast<std::size_t>(x.dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[d0], order[d1]);
  return permute(x, order);
}

Tensor slice(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t stop,
             std::int64_t step) {
  PW_CHECK(x.dim() > 0, "[slice] cannot slice a 0-dim tensor");
  const auto d = static_cast<std::size_t>(wrap_dim(dim, x.dim(), "slice"));
  PW_CHECK(step > 0, "[slice] step must be positive, got {}", step);
  const std::int64_t n = x.shape()[d];
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  start = std::clamp<std::int64_t>(start, 0, n);
  stop = std::clamp<std::int64_t>(stop, start, n);
  Shape shape = x.shape(), strides = x.strides();
  shape[d] = (stop - start + step - 1) / step;
  strides[d] *= step;
  Tensor out = make_view(x, shape, strides, x.offset() + start * x.strides()[d]);
  if (needs_grad({x}))
    record("slice", out, {x},
           [shape = x.shape(), d, start, stop, step](const Tensor& g,
                                                     const Node&) -> std::vector<Tensor> {
             Tensor gx = zeros(shape, g.dtype());
             copy_into(slice(gx, static_cast<std::int64_t>(d), start, stop, step), g);
             return {gx};
           });
  return out;
}

Tensor squeeze(const Tensor& x) {
  Shape shape;
  for (auto n : x.shape())
    if (n != 1) shape.push_back(n);
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, std::int64_t dim) {
  const auto d = static_cast<std::size_t>(wrap_dim(dim, x.dim(), "squeeze"));
  if (x.dim() == 0 || x.shape()[d] != 1) return x;
  Shape shape = x.shape();
  shape.erase(shape.begin() + static_cast<std::ptrdiff_t>(d));
  return reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, std::int64_t dim) {
  const auto d = static_cast<std::size_t>(wrap_dim(dim, x.dim() + 1, "unsqueeze"));
  Shape shape = x.shape();
  shape.insert(shape.begin() + static_cast<std::ptrdiff_t>(d), 1);
  return reshape(x, shape);
}

bool is_channels_last(const Tensor& x) {
  if (x.dim() != 4) return false;
  const Shape& n = x.shape();
  const Shape expected{n[1] * n[2] * n[3], 1, n[3] * n[1], n[1]};
  for (std::size_t d = 0; d < 4; ++d)
    if (n[d] > 1 && x.strides()[d] != expected[d]) return false;
  return true;
}

Tensor contiguous(const Tensor& x) {
  return x.is_contiguous() ? x : clone(x);
}

Tensor clone(const Tensor& x) {
  Tensor out = copy_contiguous(x);
  if (needs_grad({x}))
    record("clone", out, {x},
           [](const Tensor& g, const Node&) -> std::vector<Tensor> { return {g}; });
  return out;
}

Tensor to(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = copy_contiguous(x, dtype);
  if (needs_grad({x}))
    record("to", out, {x}, [from = x.dtype()](const Tensor& g, const Node&) -> std::vector<Tensor> {
      return {copy_contiguous(g, from)};
    });
  return out;
}

}  // namespace pw
