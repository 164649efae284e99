// Parallel loops over index ranges and over strided N-d index spaces, used by every
// elementwise kernel: the contiguous fast path and the general strided path share one driver.
#pragma once
#include <omp.h>

#include <array>
#include <cstdint>
#include <vector>

#include "core/shape.h"

namespace pw {

// Below this many elements a loop runs on one thread: thread start-up would cost more.
inline constexpr std::int64_t kParallelGrain = 32768;

// Calls fn(begin, end) on disjoint chunks covering [0, n), in parallel when n >= grain.
template <typename F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (n < grain || omp_get_max_threads() == 1 || omp_in_parallel()) {
    fn(std::int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const std::int64_t nt = omp_get_num_threads();
    const std::int64_t t = omp_get_thread_num();
    const std::int64_t chunk = (n + nt - 1) / nt;
    const std::int64_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    if (b < e) fn(b, e);
  }
}

// Iterates over `shape` for K tensors given by their strides (in elements). The dims are
// coalesced where every tensor allows it; then `inner(offsets, n, inner_strides)` is called
// once per innermost row with the element offsets of the row's first element in each tensor.
template <std::size_t K, typename F>
void strided_loop(const Shape& shape, const std::array<Shape, K>& strides, F&& inner) {
  // Drop size-1 dims and merge dims that are contiguous with their inner neighbour.
  Shape dims;
  std::array<Shape, K> st;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !dims.empty();
    for (std::size_t k = 0; k < K && merge; ++k) merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      dims.back() *= shape[d];
      for (std::size_t k = 0; k < K; ++k) st[k].back() = strides[k][d];
    } else {
      dims.push_back(shape[d]);
      for (std::size_t k = 0; k < K; ++k) st[k].push_back(strides[k][d]);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    for (auto& s : st) s.push_back(0);
  }
  const std::int64_t rank = static_cast<std::int64_t>(dims.size());
  const std::int64_t n_inner = dims.back();
  std::array<std::int64_t, K> inner_strides;
  for (std::size_t k = 0; k < K; ++k) inner_strides[k] = st[k].back();
  std::int64_t rows = 1;
  for (std::int64_t d = 0; d + 1 < rank; ++d) rows *= dims[d];
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(n_inner, 1));
  parallel_for(rows, grain, [&](std::int64_t begin, std::int64_t end) {
    // Decompose `begin` into a counter over the outer dims once, then step it.
    std::vector<std::int64_t> counter(static_cast<std::size_t>(rank), 0);
    std::array<std::int64_t, K> off{};
    std::int64_t rem = begin;
    for (std::int64_t d = rank - 2; d >= 0; --d) {
      counter[d] = rem % dims[d];
      rem /= dims[d];
      for (std::size_t k = 0; k < K; ++k) off[k] += counter[d] * st[k][d];
    }
    for (std::int64_t r = begin; r < end; ++r) {
      inner(off, n_inner, inner_strides);
      for (std::int64_t d = rank - 2; d >= 0; --d) {
        for (std::size_t k = 0; k < K; ++k) off[k] += st[k][d];
        if (++counter[d] < dims[d]) break;
        for (std::size_t k = 0; k < K; ++k) off[k] -= st[k][d] * dims[d];
        counter[d] = 0;
      }
    }
  });
}

}  // namespace pw
