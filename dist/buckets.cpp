#include "dist/buckets.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace pw::dist {

GradientBuckets::GradientBuckets(std::vector<Tensor> params, std::size_t bucket_bytes)
    : params_(std::move(params)) {
  PW_CHECK(bucket_bytes >= sizeof(float), "[GradientBuckets] bucket size {} bytes is too small",
           bucket_bytes);
  const std::size_t cap = bucket_bytes / sizeof(float);
  Bucket current;
  std::size_t values = 0;
  auto close = [&] {
    if (current.params.empty()) return;
    current.data.assign(values + current.params.size(), 0.0f);
    buckets_.push_back(std::move(current));
    current = Bucket();
    values = 0;
  };
  for (std::size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    PW_CHECK(p.defined() && p.dtype() == DType::Float32,
             "[GradientBuckets] parameter {} must be a defined float32 tensor", k);
    const auto n = static_cast<std::size_t>(p.numel());
    if (values > 0 && values + n > cap) close();
    current.params.push_back(k);
    current.offsets.push_back(values);
    values += n;
  }
  close();
}

std::size_t GradientBuckets::num_values() const {
  std::size_t n = 0;
  for (const auto& b : buckets_) n += b.data.size();
  return n;
}

void GradientBuckets::allreduce(Communicator& comm, std::string_view what) {
  if (comm.size() == 1) return;
  for (std::size_t bi = 0; bi < buckets_.size(); ++bi) {
    Bucket& b = buckets_[bi];
    const std::size_t flags = b.data.size() - b.params.size();
    for (std::size_t i = 0; i < b.params.size(); ++i) {
      const Tensor& p = params_[b.params[i]];
      float* dst = b.data.data() + b.offsets[i];
      const Tensor g = p.grad();
      if (!g.defined()) {
        std::fill(dst, dst + p.numel(), 0.0f);
        b.data[flags + i] = 0.0f;
        continue;
      }
      PW_CHECK(g.shape() == p.shape(), "[GradientBuckets] gradient {} of a parameter {}", g.shape(),
               p.shape());
      const Tensor dense =
          g.is_contiguous() && g.dtype() == DType::Float32 ? g : copy_contiguous(g, DType::Float32);
      std::memcpy(dst, dense.data<float>(), static_cast<std::size_t>(p.numel()) * sizeof(float));
      b.data[flags + i] = 1.0f;
    }
    comm.allreduce_sum(b.data, buckets_.size() == 1 ? std::string(what)
                                                    : fmt::format("{} (bucket {} of {})", what,
                                                                  bi + 1, buckets_.size()));
    for (std::size_t i = 0; i < b.params.size(); ++i) {
      const Tensor& p = params_[b.params[i]];
      if (b.data[flags + i] == 0.0f) continue;  // no rank had a gradient: it stays undefined
      // A fresh tensor: the old gradient may share memory with a buffer of the backward pass.
      const float* src = b.data.data() + b.offsets[i];
      Tensor g = empty(p.shape());
      std::memcpy(g.data<float>(), src, static_cast<std::size_t>(p.numel()) * sizeof(float));
      p.set_grad(g);
    }
  }
}

}  // namespace pw::dist
