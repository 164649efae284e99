#include "core/tensor.h"

#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/parallel.h"

namespace pw {

namespace {

// Converts one value; float -> bfloat16 rounds to nearest even (through float for double).
template <typename Out, typename In>
Out convert(In v) {
  if constexpr (std::is_same_v<Out, bfloat16>)
    return bfloat16(static_cast<float>(v));
  else if constexpr (std::is_same_v<In, bfloat16>)
    return static_cast<Out>(static_cast<float>(v));
  else
    return static_cast<Out>(v);
}

}  // namespace

Storage::Storage(std::size_t n) : data(allocate(n)), nbytes(n) {}
Storage::~Storage() {
  deallocate(data, nbytes);
}

std::int64_t Tensor::size(std::int64_t dim) const {
  return impl_->shape[wrap_dim(dim, this->dim(), "size")];
}

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (std::size_t i = impl_->shape.size(); i-- > 0;) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl_->storage->data) +
         impl_->offset * static_cast<std::int64_t>(dtype_size(impl_->dtype));
}

Tensor& Tensor::requires_grad_(bool value) {
  PW_CHECK(is_leaf() || value, "[requires_grad_] only leaf tensors can stop requiring grad");
  impl_->requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const {
  return impl_->grad ? Tensor(impl_->grad) : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  PW_CHECK(!g.defined() || g.shape() == shape(),
           "[set_grad] gradient of shape {} for a tensor of shape {}",
           g.defined() ? shape_str(g.shape()) : "()", shape_str(shape()));
  impl_->grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  run_backward(*this, grad, retain_graph);
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->offset = impl_->offset;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

double Tensor::item() const {
  PW_CHECK(numel() == 1, "[item] a tensor of shape {} has {} elements, not one", shape_str(shape()),
           numel());
  return at(Shape(shape().size(), 0));
}

double Tensor::at(const Shape& index) const {
  PW_CHECK(index.size() == shape().size(), "[at] index of rank {} for a tensor of shape {}",
           index.size(), shape_str(shape()));
  std::int64_t off = 0;
  for (std::size_t d = 0; d < index.size(); ++d) {
    PW_CHECK(index[d] >= 0 && index[d] < shape()[d], "[at] index {} out of range for shape {}",
             shape_str(index), shape_str(shape()));
    off += index[d] * strides()[d];
  }
  return PW_DISPATCH_ALL(dtype(), [&] { return convert<double>(data<scalar_t>()[off]); });
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = copy_contiguous(*this, dtype_of<T>());
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<bfloat16> Tensor::to_vector<bfloat16>() const;

// ---- creation ----

Tensor empty(const Shape& shape, DType dtype) {
  for (auto d : shape) PW_CHECK(d >= 0, "[empty] negative dimension in shape {}", shape_str(shape));
  // Checked before anything is allocated: a shape may come from a file.
  const std::int64_t nbytes =
      checked_mul(numel_of(shape), static_cast<std::int64_t>(dtype_size(dtype)), "empty");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<std::size_t>(nbytes));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  PW_DISPATCH_ALL(dtype, [&] {
    scalar_t* p = t.data<scalar_t>();
    const auto v = convert<scalar_t>(value);
    parallel_for(t.numel(), kParallelGrain,
                 [&](std::int64_t b, std::int64_t e) { std::fill(p + b, p + e, v); });
  });
  return t;
}

Tensor zeros(const Shape& shape, DType dtype) {
  return full(shape, 0.0, dtype);
}
Tensor ones(const Shape& shape, DType dtype) {
  return full(shape, 1.0, dtype);
}
Tensor empty_like(const Tensor& t) {
  return empty(t.shape(), t.dtype());
}
Tensor zeros_like(const Tensor& t) {
  return zeros(t.shape(), t.dtype());
}

Tensor arange(double start, double end, double step, DType dtype) {
  PW_CHECK(step != 0.0, "[arange] step must be non-zero");
  const auto n = static_cast<std::int64_t>(std::max(0.0, std::ceil((end - start) / step)));
  Tensor t = empty({n}, dtype);
  PW_DISPATCH(dtype, [&] {
    scalar_t* p = t.data<scalar_t>();
    for (std::int64_t i = 0; i < n; ++i)
      p[i] = static_cast<scalar_t>(start + step * static_cast<double>(i));
  });
  return t;
}

Tensor rand(const Shape& shape, Generator& gen, DType dtype, double low, double high) {
  Tensor t = empty(shape, dtype);
  PW_DISPATCH(dtype, [&] {
    scalar_t* p = t.data<scalar_t>();
    for (std::int64_t i = 0; i < t.numel(); ++i)
      p[i] = static_cast<scalar_t>(low + (high - low) * gen.uniform());
  });
  return t;
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, double mean, double std) {
  Tensor t = empty(shape, dtype);
  PW_DISPATCH(dtype, [&] {
    scalar_t* p = t.data<scalar_t>();
    for (std::int64_t i = 0; i < t.numel(); ++i)
      p[i] = static_cast<scalar_t>(mean + std * gen.normal());
  });
  return t;
}

namespace {
template <typename T>
Tensor from_values(const std::vector<T>& values, const Shape& shape) {
  PW_CHECK(static_cast<std::int64_t>(values.size()) == numel_of(shape),
           "[from_vector] {} values cannot fill shape {}", values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
}  // namespace

Tensor from_vector(const std::vector<float>& values, const Shape& shape) {
  return from_values(values, shape);
}
Tensor from_vector(const std::vector<double>& values, const Shape& shape) {
  return from_values(values, shape);
}

Tensor tensor(std::initializer_list<double> values, const Shape& shape, DType dtype) {
  Tensor t = from_values(std::vector<double>(values), shape);
  return dtype == DType::Float64 ? t : copy_contiguous(t, dtype);
}

// ---- copies ----

void copy_into(const Tensor& dst, const Tensor& src) {
  PW_CHECK(dst.shape() == src.shape(), "[copy] cannot copy shape {} into shape {}",
           shape_str(src.shape()), shape_str(dst.shape()));
  const bool dense = dst.is_contiguous() && src.is_contiguous();
  if (dense && src.dtype() == DType::Float32 && dst.dtype() == DType::BFloat16) {
    float_to_bfloat16(src.data<float>(), dst.data<bfloat16>(), dst.numel());
  } else if (dense && src.dtype() == DType::BFloat16 && dst.dtype() == DType::Float32) {
    bfloat16_to_float(src.data<bfloat16>(), dst.data<float>(), dst.numel());
  } else {
    PW_DISPATCH_ALL(dst.dtype(), [&] {
      using out_t = scalar_t;
      out_t* o = dst.data<out_t>();
      PW_DISPATCH_ALL(src.dtype(), [&] {
        const scalar_t* in = src.data<scalar_t>();
        if (dense) {
          parallel_for(dst.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i) o[i] = convert<out_t>(in[i]);
          });
          return;
        }
        strided_loop<2>(dst.shape(), {dst.strides(), src.strides()},
                        [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                            const std::array<std::int64_t, 2>& s) {
                          out_t* po = o + off[0];
                          const scalar_t* pi = in + off[1];
                          if (s[0] == 1 && s[1] == 1) {  // contiguous rows: a vector loop
                            for (std::int64_t i = 0; i < n; ++i) po[i] = convert<out_t>(pi[i]);
                          } else {
                            for (std::int64_t i = 0; i < n; ++i)
                              po[i * s[0]] = convert<out_t>(pi[i * s[1]]);
                          }
                        });
      });
    });
  }
  dst.bump_version();
}

Tensor copy_contiguous(const Tensor& t, DType dtype) {
  Tensor out = empty(t.shape(), dtype);
  copy_into(out, t);
  return out;
}

Tensor make_view(const Tensor& t, Shape shape, Shape strides, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = t.dtype();
  return Tensor(std::move(impl));
}

}  // namespace pw

// ---- printing, in PyTorch's manner ----
namespace {

void format_values(std::string& out, const pw::Tensor& t, pw::Shape& index, std::size_t dim,
                   bool abbreviate, int indent) {
  const std::int64_t n = t.shape()[dim];
  const bool cut = abbreviate && n > 6;
  out += '[';
  for (std::int64_t i = 0; i < n; ++i) {
    if (cut && i == 3) {
      out += dim + 1 == t.shape().size() ? "..., " : "...,\n" + std::string(indent + dim + 1, ' ');
      i = n - 3;
    }
    index[dim] = i;
    if (dim + 1 == t.shape().size()) {
      out += fmt::format("{:.4f}", t.at(index));
    } else {
      format_values(out, t, index, dim + 1, abbreviate, indent);
    }
    if (i + 1 < n) {
      out += ',';
      out += dim + 1 == t.shape().size()
                 ? " "
                 : std::string(t.dim() - dim - 1, '\n') + std::string(indent + dim + 1, ' ');
    }
  }
  out += ']';
}

}  // namespace

auto fmt::formatter<pw::Tensor>::format(const pw::Tensor& t, format_context& ctx) const
    -> format_context::iterator {
  if (!t.defined()) return fmt::format_to(ctx.out(), "tensor(undefined)");
  std::string out = "tensor(";
  if (t.dim() == 0) {
    out += fmt::format("{:.4f}", t.item());
  } else {
    pw::Shape index(t.shape().size(), 0);
    if (t.numel() > 0)
      format_values(out, t, index, 0, t.numel() > 1000, 7);
    else
      out += "[]";
  }
  out += fmt::format(", shape={}, dtype={}", pw::shape_str(t.shape()), pw::dtype_name(t.dtype()));
  if (t.requires_grad()) out += ", requires_grad=True";
  return fmt::format_to(ctx.out(), "{})", out);
}
