// The machine's streaming bandwidth, as the yardstick for memory-bound ops: a STREAM copy
// (a[i] = b[i]) over float32 arrays far larger than the caches, parallel over the OpenMP
// threads with the same static split as pw::parallel_for, measured once per process.
#pragma once
#include <benchmark/benchmark.h>

namespace pw::bench {

// STREAM copy bandwidth in GB/s (bytes read + bytes written, 1 GB = 1e9 bytes), best of
// several repetitions as STREAM reports it; measured on the first call (bench/bench_memory.cpp).
double stream_copy_gbps();

// Sets the counters of a memory-bound op that moves `bytes` per iteration (each input read
// once, each output written once): "GB/s", and "of_copy", that rate as a fraction of
// stream_copy_gbps(). An op whose data stay in the caches between iterations can exceed 1.
void set_memory_counters(benchmark::State& state, double bytes);

}  // namespace pw::bench
