// Tensor: a shared handle to a strided view (shape, strides, offset, dtype) of a Storage,
// plus the autograd metadata (requires_grad, grad, grad_fn). Differentiable operations live
// in ops/; this header holds what every layer needs: creation, element access, printing.
#pragma once
#include <fmt/format.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/random.h"
#include "core/shape.h"

namespace pw {

class Node;

// A reference-counted buffer. `version` counts in-place writes, so that autograd can tell
// when a tensor saved for backward was changed (views share the storage, hence the count).
struct Storage {
  explicit Storage(std::size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  std::size_t nbytes = 0;
  std::uint64_t version = 0;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;            // in elements
  std::int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;         // set on results of recorded ops
  std::weak_ptr<Node> grad_accumulator;  // leaves: the node that accumulates into grad
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (no storage), used for "no gradient"
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  std::int64_t size(std::int64_t dim) const;
  std::int64_t dim() const { return static_cast<std::int64_t>(impl_->shape.size()); }
  std::int64_t numel() const { return numel_of(impl_->shape); }
  std::int64_t offset() const { return impl_->offset; }
  DType dtype() const { return impl_->dtype; }
  bool is_contiguous() const;
  // True when the two handles are views of the same storage.
  bool shares_storage(const Tensor& other) const;

  // Pointer to the first element; T must match dtype().
  template <typename T>
  T* data() const {
    PW_CHECK(dtype_of<T>() == dtype(), "[data] tensor has dtype {}, not {}", dtype_name(dtype()),
             dtype_name(dtype_of<T>()));
    return static_cast<T*>(impl_->storage->data) + impl_->offset;
  }
  void* raw_data() const;

  // ---- autograd ----
  bool requires_grad() const { return impl_->requires_grad; }
  // Marks a leaf as needing a gradient; returns *this for chaining.
  Tensor& requires_grad_(bool value = true);
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  // The accumulated gradient (undefined until a backward pass reaches this leaf).
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  // Drops the gradient (PyTorch's set_to_none=True).
  void zero_grad() const { impl_->grad.reset(); }
  // Reverse-mode differentiation from this tensor. Without `grad` it must hold one element.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // A tensor sharing this storage with no autograd history.
  Tensor detach() const;

  // ---- in-place bookkeeping ----
  std::uint64_t version() const { return impl_->storage->version; }
  void bump_version() const { ++impl_->storage->version; }

  // ---- values (for tests, printing and small host-side logic) ----
  double item() const;
  double at(const Shape& index) const;
  template <typename T = float>
  std::vector<T> to_vector() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// ---- creation ----
Tensor empty(const Shape& shape, DType dtype = DType::Float32);
Tensor zeros(const Shape& shape, DType dtype = DType::Float32);
Tensor ones(const Shape& shape, DType dtype = DType::Float32);
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32);
// Values start, start+step, ... below end (like torch.arange).
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Float32);
// Uniform in [low, high).
Tensor rand(const Shape& shape, Generator& gen = default_generator(), DType dtype = DType::Float32,
            double low = 0.0, double high = 1.0);
// Normal with the given mean and std.
Tensor randn(const Shape& shape, Generator& gen = default_generator(), DType dtype = DType::Float32,
             double mean = 0.0, double std = 1.0);
// A tensor holding `values` (row-major) with the given shape.
Tensor from_vector(const std::vector<float>& values, const Shape& shape);
Tensor from_vector(const std::vector<double>& values, const Shape& shape);
Tensor tensor(std::initializer_list<double> values, const Shape& shape,
              DType dtype = DType::Float32);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);

// ---- non-differentiable copies (the building blocks of ops and of the engine) ----
// A new contiguous tensor with t's values, converted to `dtype`.
Tensor copy_contiguous(const Tensor& t, DType dtype);
inline Tensor copy_contiguous(const Tensor& t) {
  return copy_contiguous(t, t.dtype());
}
// Copies src into dst elementwise (same shape, any strides and dtypes); bumps dst's version.
void copy_into(const Tensor& dst, const Tensor& src);
// A view with a new shape/strides/offset over t's storage (no checks beyond bounds).
Tensor make_view(const Tensor& t, Shape shape, Shape strides, std::int64_t offset);

}  // namespace pw

template <>
struct fmt::formatter<pw::Tensor> : fmt::formatter<std::string_view> {
  auto format(const pw::Tensor& t, format_context& ctx) const -> format_context::iterator;
};
