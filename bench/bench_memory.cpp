// STREAM-style memory bandwidth (McCalpin's copy, scale, add and triad) on float32 arrays,
// parallel over the OpenMP threads with pw::parallel_for, so that the memory-bound ops of
// bench_nn_ops.cpp can be read against what the machine streams. Bytes are counted as STREAM
// counts them: each array read or written once per pass (write-allocate traffic not counted).
// The argument is the size of one array in MiB: 1 stays in L2, 16 in L3, 64 and 256 leave it
// on this machine (105 MiB of L3 shared by the host); stream_copy_gbps() uses 64.
// The loops are kept as loops: GCC would otherwise call memcpy/memset, whose non-temporal
// stores above a size threshold are not what the ops' kernels do.
#ifndef __clang__
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "bench/memory_bandwidth.h"
#include "core/parallel.h"

namespace pw::bench {
namespace {

constexpr std::int64_t kMiB = 1 << 20;
constexpr std::int64_t kReferenceMiB = 64;
constexpr float kScalar = 3.0f;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Array = std::unique_ptr<float[], FreeDeleter>;

// n floats, 64-byte aligned, first touched by the thread that will stream its chunk.
Array make_array(std::int64_t n, float value) {
  const auto bytes = static_cast<std::size_t>((n * 4 + 63) / 64 * 64);
  Array a(static_cast<float*>(std::aligned_alloc(64, bytes)));
  float* p = a.get();
  parallel_for(n, kParallelGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) p[i] = value;
  });
  return a;
}

enum class Kernel { Copy, Scale, Add, Triad };

// One pass of the kernel over n elements; returns the bytes STREAM counts for it.
double stream_pass(Kernel k, float* __restrict a, const float* __restrict b,
                   const float* __restrict c, std::int64_t n) {
  parallel_for(n, kParallelGrain, [=](std::int64_t lo, std::int64_t hi) {
    switch (k) {
      case Kernel::Copy:
        for (std::int64_t i = lo; i < hi; ++i) a[i] = b[i];
        break;
      case Kernel::Scale:
        for (std::int64_t i = lo; i < hi; ++i) a[i] = kScalar * b[i];
        break;
      case Kernel::Add:
        for (std::int64_t i = lo; i < hi; ++i) a[i] = b[i] + c[i];
        break;
      case Kernel::Triad:
        for (std::int64_t i = lo; i < hi; ++i) a[i] = b[i] + kScalar * c[i];
        break;
    }
  });
  const int arrays = k == Kernel::Add || k == Kernel::Triad ? 3 : 2;
  return 4.0 * arrays * static_cast<double>(n);
}

void BM_stream(benchmark::State& state, Kernel k) {
  const std::int64_t n = state.range(0) * kMiB / 4;
  Array a = make_array(n, 0.0f), b = make_array(n, 1.0f), c = make_array(n, 2.0f);
  double bytes = 0;
  for (auto _ : state) {
    bytes = stream_pass(k, a.get(), b.get(), c.get(), n);
    benchmark::DoNotOptimize(a.get());
    benchmark::ClobberMemory();
  }
  set_memory_counters(state, bytes);
}

void stream_sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("MiB")->Arg(1)->Arg(16)->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond);
  b->UseRealTime();
}
BENCHMARK_CAPTURE(BM_stream, copy, Kernel::Copy)->Apply(stream_sizes);
BENCHMARK_CAPTURE(BM_stream, scale, Kernel::Scale)->Apply(stream_sizes);
BENCHMARK_CAPTURE(BM_stream, add, Kernel::Add)->Apply(stream_sizes);
BENCHMARK_CAPTURE(BM_stream, triad, Kernel::Triad)->Apply(stream_sizes);

double measure_stream_copy() {
  const std::int64_t n = kReferenceMiB * kMiB / 4;
  Array a = make_array(n, 0.0f), b = make_array(n, 1.0f);
  double best = 0;
  for (int rep = 0; rep < 12; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const double bytes = stream_pass(Kernel::Copy, a.get(), b.get(), nullptr, n);
    benchmark::DoNotOptimize(a.get());
    benchmark::ClobberMemory();
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    if (rep > 0) best = std::max(best, bytes * 1e-9 / dt.count());  // rep 0 warms up
  }
  return best;
}

// Measures at start-up so that the value heads the report as context. The OpenMP wait policy
// goes with it: on a machine shared with other busy processes, threads that spin between
// parallel regions (libgomp's default) lose their time slice, and every region of a
// memory-bound op then waits milliseconds for a descheduled thread; OMP_WAIT_POLICY=passive
// avoids that at the cost of a futex wake-up per region.
[[maybe_unused]] const bool kContextAdded = [] {
  benchmark::AddCustomContext("stream_copy_GB/s",
                              fmt::format("{:.1f} ({} MiB arrays, {} threads)", stream_copy_gbps(),
                                          kReferenceMiB, omp_get_max_threads()));
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  benchmark::AddCustomContext("OMP_WAIT_POLICY", policy ? policy : "(unset)");
  return true;
}();

}  // namespace

double stream_copy_gbps() {
  static const double gbps = measure_stream_copy();
  return gbps;
}

void set_memory_counters(benchmark::State& state, double bytes) {
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["of_copy"] = benchmark::Counter(bytes * 1e-9 / stream_copy_gbps(),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace pw::bench
