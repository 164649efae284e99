// A caching allocator: a training step frees and then asks again for the same buffer sizes,
// so freed blocks are kept in per-size free lists and handed out again instead of going
// back to the system (ggml's graph allocator and PyTorch's caching allocator do the same).
#pragma once
#include <cstddef>

namespace pw {

struct AllocatorStats {
  std::size_t bytes_in_use = 0;  // handed out and not yet returned
  std::size_t bytes_cached = 0;  // returned and kept for reuse
  std::size_t peak_bytes_in_use = 0;
  std::size_t system_allocations = 0;  // calls that reached the system allocator
};

// 64-byte aligned block of at least `nbytes` bytes; never null (throws pw::Error on failure).
void* allocate(std::size_t nbytes);
// Returns a block from allocate(); it is kept for reuse.
void deallocate(void* ptr, std::size_t nbytes);
// Gives every cached block back to the system.
void empty_cache();
AllocatorStats allocator_stats();

}  // namespace pw
