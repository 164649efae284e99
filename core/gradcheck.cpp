#include "core/gradcheck.h"

#include <cmath>

#include "core/autograd.h"

namespace pw {
namespace {

// Offsets (in elements, from the storage start) of each logical element, row-major.
std::vector<std::int64_t> element_offsets(const Tensor& t) {
  std::vector<std::int64_t> offs;
  offs.reserve(static_cast<std::size_t>(t.numel()));
  Shape idx(t.shape().size(), 0);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    std::int64_t off = t.offset();
    for (std::size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides()[d];
    offs.push_back(off);
    for (std::size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < t.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return offs;
}

std::vector<double> evaluate(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                             const std::vector<Tensor>& inputs) {
  NoGradGuard no_grad;
  return fn(inputs).to_vector<double>();
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opts) {
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& t = inputs[k];
    if (!t.defined() || !t.requires_grad()) continue;
    PW_CHECK(t.dtype() == DType::Float64, "[gradcheck] input {} is {}, gradcheck needs float64", k,
             dtype_name(t.dtype()));
    for (std::size_t d = 0; d < t.shape().size(); ++d)
      PW_CHECK(t.strides()[d] != 0 || t.shape()[d] == 1,
               "[gradcheck] input {} of shape {} is expanded; expand inside fn instead", k,
               shape_str(t.shape()));
  }

  Tensor out = fn(inputs);
  PW_CHECK(out.dtype() == DType::Float64, "[gradcheck] output is {}, expected float64",
           dtype_name(out.dtype()));
  const std::int64_t n_out = out.numel();

  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const std::int64_t n_in = x.numel();
    double* base = static_cast<double*>(x.impl()->storage->data);
    const auto offs = element_offsets(x);

    // Numerical Jacobian, column by column: J[j][i] = (f(x + eps e_i) - f(x - eps e_i))_j / 2eps.
    std::vector<double> numeric(static_cast<std::size_t>(n_out * n_in));
    for (std::int64_t i = 0; i < n_in; ++i) {
      const double orig = base[offs[i]];
      base[offs[i]] = orig + opts.eps;
      const auto plus = evaluate(fn, inputs);
      base[offs[i]] = orig - opts.eps;
      const auto minus = evaluate(fn, inputs);
      base[offs[i]] = orig;
      for (std::int64_t j = 0; j < n_out; ++j)
        numeric[j * n_in + i] = (plus[j] - minus[j]) / (2 * opts.eps);
    }

    // Analytical Jacobian, row by row: backward with the one-hot output gradient e_j.
    for (std::int64_t j = 0; j < n_out; ++j) {
      for (const auto& in : inputs)
        if (in.defined()) in.zero_grad();
      Tensor onehot = zeros(out.shape(), DType::Float64);
      onehot.data<double>()[j] = 1.0;
      Tensor y = fn(inputs);
      y.backward(onehot);
      Tensor g = x.grad();
      const std::vector<double> row =
          g.defined() ? g.to_vector<double>()
                      : std::vector<double>(static_cast<std::size_t>(n_in), 0.0);
      for (std::int64_t i = 0; i < n_in; ++i) {
        const double a = row[i], n = numeric[j * n_in + i];
        if (!(std::abs(a - n) <= opts.atol + opts.rtol * std::abs(n))) {
          return {false, fmt::format("input {} (shape {}): d out[{}] / d in[{}]: analytic {:.8g}, "
                                     "numeric {:.8g}",
                                     k, shape_str(x.shape()), j, i, a, n)};
        }
      }
    }
  }
  for (const auto& in : inputs)
    if (in.defined()) in.zero_grad();
  return {};
}

}  // namespace pw
