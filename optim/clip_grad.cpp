#include "optim/clip_grad.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/parallel.h"

namespace pw::optim {

namespace {

// Fixed-size chunks, reduced in chunk order: the sum does not depend on the thread count.
constexpr std::int64_t kChunk = 16384;

// sum |g|^p (or max |g| when p is infinite) over one contiguous gradient.
template <typename T>
double partial_norm(const T* g, std::int64_t n, double p) {
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<std::size_t>(chunks), 0.0);
  const bool inf = std::isinf(p);
  parallel_for(chunks, 2, [&](std::int64_t cb, std::int64_t ce) {
    for (std::int64_t c = cb; c < ce; ++c) {
      const std::int64_t b = c * kChunk, e = std::min(n, b + kChunk);
      double acc = 0.0;
      for (std::int64_t i = b; i < e; ++i) {
        const double a = std::abs(static_cast<double>(g[i]));
        if (inf) {
          acc = (a > acc || std::isnan(a)) ? a : acc;
        } else if (p == 2.0) {
          acc += a * a;
        } else if (p == 1.0) {
          acc += a;
        } else {
          acc += std::pow(a, p);
        }
      }
      part[static_cast<std::size_t>(c)] = acc;
    }
  });
  double total = 0.0;
  for (double x : part) total = inf ? ((x > total || std::isnan(x)) ? x : total) : total + x;
  return total;
}

}  // namespace

double grad_norm(const std::vector<Tensor>& params, double norm_type) {
  PW_CHECK(norm_type > 0.0, "[clip_grad_norm_] invalid norm_type {}", norm_type);
  const bool inf = std::isinf(norm_type);
  double total = 0.0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!g.is_contiguous()) g = copy_contiguous(g);
    const double part = PW_DISPATCH(g.dtype(), [&] {
      return partial_norm<scalar_t>(g.data<scalar_t>(), g.numel(), norm_type);
    });
    total = inf ? ((part > total || std::isnan(part)) ? part : total) : total + part;
  }
  if (inf) return total;
  return norm_type == 2.0 ? std::sqrt(total) : std::pow(total, 1.0 / norm_type);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  NoGradGuard no_grad;
  const double total = grad_norm(params, norm_type);
  if (!std::isfinite(total)) return total;
  const double coef = max_norm / (total + 1e-6);
  if (coef >= 1.0) return total;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    PW_DISPATCH(g.dtype(), [&] {
      using T = scalar_t;
      const T c = static_cast<T>(coef);
      if (g.is_contiguous()) {
        T* d = g.data<T>();
        parallel_for(g.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
          for (std::int64_t i = b; i < e; ++i) d[i] *= c;
        });
      } else {
        // Rare (gradients are normally contiguous): scale a copy and write it back.
        Tensor tmp = copy_contiguous(g);
        T* d = tmp.data<T>();
        for (std::int64_t i = 0; i < tmp.numel(); ++i) d[i] *= c;
        copy_into(g, tmp);
      }
    });
    g.bump_version();
  }
  return total;
}

}  // namespace pw::optim
