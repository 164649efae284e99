#include "core/autocast.h"

#include <unordered_map>

namespace pw {
namespace {

struct CachedCast {
  std::weak_ptr<TensorImpl> source;  // guards against a freed weight's address being reused
  std::uint64_t version = 0;
  Tensor bf16;
};

struct AutocastState {
  int depth = 0;  // enabled guards currently open
  bool enabled = false;
  std::unordered_map<const TensorImpl*, CachedCast> cache;
};

AutocastState& state() {
  thread_local AutocastState s;
  return s;
}

}  // namespace

bool Autocast::is_enabled() {
  return state().enabled;
}

AutocastGuard::AutocastGuard(bool enabled) : prev_(state().enabled) {
  state().enabled = enabled;
  if (enabled) ++state().depth;
}

AutocastGuard::~AutocastGuard() {
  AutocastState& s = state();
  if (s.enabled && --s.depth == 0) s.cache.clear();
  s.enabled = prev_;
}

Tensor autocast_bf16(const Tensor& t) {
  if (t.dtype() == DType::BFloat16 && t.is_contiguous()) return t.detach();
  if (!(t.is_leaf() && t.requires_grad()) || state().depth == 0)
    return copy_contiguous(t, DType::BFloat16);
  CachedCast& c = state().cache[t.impl()];
  if (!c.bf16.defined() || c.source.lock() != t.impl_ptr() || c.version != t.version()) {
    c.source = t.impl_ptr();
    c.version = t.version();
    c.bf16 = copy_contiguous(t, DType::BFloat16);
  }
  return c.bf16;
}

}  // namespace pw
