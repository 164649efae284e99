// Gradient buckets: the gradients of a model summed over the ranks, as DDP's reducer sums them.
#pragma once
#include <cstddef>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "dist/communicator.h"

namespace pw::dist {

// PyTorch DDP's bucket cap (25 MiB): every preset's gradients fit in one or two buckets.
inline constexpr std::size_t kDefaultBucketBytes = 25u << 20;

// The float32 gradients of `params` packed into flat buckets of at most `bucket_bytes` (a larger
// parameter gets a bucket of its own) in reverse parameter order, the order backward produces
// them in (so that a bucket could one day be sent while backward goes on), and summed with one
// allreduce per bucket, in the same fixed order on every rank. A parameter without a gradient
// on a rank (no sample of that rank reached it, or the rank had no samples) counts as zeros
// there; after the sum it has a gradient when any rank had one (a flag per parameter travels in
// its bucket), so that the optimizer skips exactly the parameters it skips on one process.
class GradientBuckets {
 public:
  explicit GradientBuckets(std::vector<Tensor> params,
                           std::size_t bucket_bytes = kDefaultBucketBytes);

  // Replaces every parameter's gradient by its sum over the ranks of `comm`. Does nothing on one
  // rank (the gradients are already the sums).
  void allreduce(Communicator& comm, std::string_view what = "gradient allreduce");

  std::size_t num_buckets() const { return buckets_.size(); }
  // float32 values each rank sends per allreduce(): the gradients and one flag per parameter.
  std::size_t num_values() const;
  std::size_t bytes() const { return num_values() * sizeof(float); }

 private:
  struct Bucket {
    std::vector<std::size_t> params;   // indices into params_, in packing order
    std::vector<std::size_t> offsets;  // of each parameter's values in data
    std::vector<float> data;           // the gradients, then one flag per parameter
  };
  std::vector<Tensor> params_;
  std::vector<Bucket> buckets_;
};

}  // namespace pw::dist
