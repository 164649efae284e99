#include "core/allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/error.h"

// Under AddressSanitizer, cached blocks are poisoned while they wait in a free list and the
// rounding slack past each request is poisoned while it is in use, so that a read after free
// or past the end of a tensor is reported although the block never went back to the system.
#if defined(__SANITIZE_ADDRESS__)
#define PW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PW_ASAN 1
#endif
#endif
#ifdef PW_ASAN
#include <sanitizer/asan_interface.h>
#define PW_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define PW_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define PW_POISON(p, n) ((void)(p), (void)(n))
#define PW_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace pw {
namespace {

constexpr std::size_t kAlignment = 64;
// Larger requests are refused before rounding (which would wrap around) or asking the system.
constexpr std::size_t kMaxBytes = std::size_t{1} << 46;  // 64 TiB

// Rounds sizes up so that near-equal requests share a free list.
std::size_t round_size(std::size_t n) {
  if (n <= 512) return (n + kAlignment - 1) / kAlignment * kAlignment;
  constexpr std::size_t kPage = 4096;
  return (n + kPage - 1) / kPage * kPage;
}

struct Cache {
  std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<void*>> free_lists;
  AllocatorStats stats;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destructors
  return *c;
}

}  // namespace

void* allocate(std::size_t nbytes) {
  PW_CHECK(nbytes <= kMaxBytes, "[allocate] {} bytes is more than any machine has", nbytes);
  const std::size_t size = round_size(nbytes == 0 ? 1 : nbytes);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mutex);
    auto it = c.free_lists.find(size);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.bytes_cached -= size;
      c.stats.bytes_in_use += size;
      c.stats.peak_bytes_in_use = std::max(c.stats.peak_bytes_in_use, c.stats.bytes_in_use);
      PW_UNPOISON(p, nbytes);
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlignment, size);
  if (!p) {
    empty_cache();
    p = std::aligned_alloc(kAlignment, size);
  }
  PW_CHECK(p != nullptr, "[allocate] out of memory allocating {} bytes", size);
  std::lock_guard lock(c.mutex);
  c.stats.system_allocations++;
  c.stats.bytes_in_use += size;
  c.stats.peak_bytes_in_use = std::max(c.stats.peak_bytes_in_use, c.stats.bytes_in_use);
  PW_POISON(static_cast<char*>(p) + nbytes, size - nbytes);
  return p;
}

void deallocate(void* ptr, std::size_t nbytes) {
  if (!ptr) return;
  const std::size_t size = round_size(nbytes == 0 ? 1 : nbytes);
  Cache& c = cache();
  PW_POISON(ptr, size);
  std::lock_guard lock(c.mutex);
  c.free_lists[size].push_back(ptr);
  c.stats.bytes_in_use -= size;
  c.stats.bytes_cached += size;
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  for (auto& [size, list] : c.free_lists) {
    for (void* p : list) {
      PW_UNPOISON(p, size);
      std::free(p);
    }
    c.stats.bytes_cached -= size * list.size();
    list.clear();
  }
}

AllocatorStats allocator_stats() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  return c.stats;
}

}  // namespace pw
