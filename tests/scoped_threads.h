// Sets the OpenMP thread count for a scope. The suite runs with OMP_NUM_THREADS=1 (see the
// Makefile); tests of the multi-threaded kernel paths ask for two threads explicitly.
#pragma once
#include <omp.h>

namespace pw::testing {

class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : prev_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ScopedThreads() { omp_set_num_threads(prev_); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int prev_;
};

}  // namespace pw::testing
