#include "core/autograd.h"

#include <unordered_map>

#include "core/parallel.h"

namespace pw {
namespace {

thread_local bool grad_enabled = true;

class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, BackwardFn fn) : name_(name), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(const Tensor& grad_output) override { return fn_(grad_output, *this); }
  std::string name() const override { return name_; }
  void release() override {
    fn_ = nullptr;  // frees the saved tensors the closure captured
    released_ = true;
  }

 private:
  const char* name_;
  BackwardFn fn_;
};

// Adds gradients into a leaf's .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : leaf_(leaf) {}
  std::vector<Tensor> apply(const Tensor& grad) override;
  std::string name() const override { return "AccumulateGrad"; }
  void release() override {}  // holds nothing; a leaf can be reached by many backward passes

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

// out = a + b into a new contiguous tensor (the engine's own accumulation).
Tensor add_values(const Tensor& a, const Tensor& b) {
  // bfloat16 gradients (of bfloat16 tensors) are summed in float32 and rounded once.
  if (a.dtype() == DType::BFloat16)
    return copy_contiguous(add_values(copy_contiguous(a, DType::Float32), b), DType::BFloat16);
  Tensor out = copy_contiguous(a);
  PW_DISPATCH(out.dtype(), [&] {
    scalar_t* o = out.data<scalar_t>();
    Tensor bc = b.dtype() == out.dtype() ? b : copy_contiguous(b, out.dtype());
    const scalar_t* pb = static_cast<const scalar_t*>(bc.raw_data());
    strided_loop<2>(out.shape(), {out.strides(), bc.strides()},
                    [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                        const std::array<std::int64_t, 2>& s) {
                      for (std::int64_t i = 0; i < n; ++i)
                        o[off[0] + i * s[0]] += pb[off[1] + i * s[1]];
                    });
  });
  return out;
}

void accumulate_into_leaf(TensorImpl& leaf, const Tensor& grad) {
  PW_CHECK(grad.shape() == leaf.shape, "[backward] gradient of shape {} for a leaf of shape {}",
           shape_str(grad.shape()), shape_str(leaf.shape));
  if (!leaf.grad) {
    // Always a fresh buffer: the incoming gradient may be shared with other inputs' gradients.
    leaf.grad = copy_contiguous(grad, leaf.dtype).impl_ptr();
  } else {
    Tensor old(leaf.grad);
    leaf.grad = add_values(old, grad).impl_ptr();
  }
}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& grad) {
  if (auto leaf = leaf_.lock()) accumulate_into_leaf(*leaf, grad);
  return {};
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  if (t.grad_fn()) return {t.grad_fn()};
  TensorImpl* impl = t.impl();
  auto acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return {acc};
}

}  // namespace

bool GradMode::is_enabled() {
  return grad_enabled;
}
void GradMode::set_enabled(bool enabled) {
  grad_enabled = enabled;
}

Node::~Node() {
  std::vector<std::shared_ptr<Node>> stack;
  for (auto& e : next)
    if (e.node) stack.push_back(std::move(e.node));
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    if (n.use_count() == 1) {
      for (auto& e : n->next)
        if (e.node) stack.push_back(std::move(e.node));
      n->next.clear();
    }
  }
}

SavedTensor::SavedTensor(const Tensor& t) {
  if (!t.defined()) return;
  data_ = t.detach();
  version_ = t.version();
}

Tensor SavedTensor::get() const {
  PW_CHECK(!data_.defined() || data_.version() == version_,
           "a tensor of shape {} saved for backward was modified in place (version {} -> {})",
           shape_str(data_.shape()), version_, data_.version());
  return data_;
}

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* name, Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward) {
  auto node = std::make_shared<FunctionNode>(name, std::move(backward));
  node->next.reserve(inputs.size());
  for (const auto& t : inputs) {
    node->next.push_back(gradient_edge(t));
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
    node->input_dtypes.push_back(t.defined() ? t.dtype() : DType::Float32);
  }
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}

void run_backward(const Tensor& root, const Tensor& grad_output, bool retain_graph) {
  PW_CHECK(root.defined(), "[backward] called on an undefined tensor");
  PW_CHECK(root.requires_grad(),
           "[backward] tensor of shape {} does not require grad and has no grad_fn",
           shape_str(root.shape()));
  Tensor grad = grad_output;
  if (!grad.defined()) {
    PW_CHECK(root.numel() == 1,
             "[backward] grad can be implicitly created only for a single-element output, got {}",
             shape_str(root.shape()));
    grad = full(root.shape(), 1.0, root.dtype());
  }
  PW_CHECK(grad.shape() == root.shape(),
           "[backward] gradient of shape {} for an output of shape {}", shape_str(grad.shape()),
           shape_str(root.shape()));

  NoGradGuard no_grad;
  std::shared_ptr<Node> start = gradient_edge(root).node;

  // Count, for every reachable node, how many edges point at it (explicit DFS).
  std::unordered_map<Node*, int> deps;
  {
    std::vector<Node*> stack{start.get()};
    deps[start.get()] = 0;
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (auto& e : n->next) {
        if (!e.node) continue;
        auto [it, inserted] = deps.try_emplace(e.node.get(), 0);
        it->second++;
        if (inserted) stack.push_back(e.node.get());
      }
    }
  }

  // Kahn's algorithm: a node runs once every consumer has sent its gradient. A node that
  // received no gradient at all is still visited so that its inputs' counts drop.
  std::unordered_map<Node*, Tensor> buffers;
  buffers[start.get()] = grad;
  std::vector<std::shared_ptr<Node>> ready{start};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    Tensor g;
    if (auto it = buffers.find(node.get()); it != buffers.end()) {
      g = std::move(it->second);
      buffers.erase(it);
    }
    std::vector<Tensor> grads;
    if (g.defined()) {
      PW_CHECK(!node->released(),
               "[backward] trying to backward through the graph a second time (node '{}' has "
               "released its saved tensors); pass retain_graph=true to the first backward",
               node->name());
      try {
        grads = node->apply(g);
      } catch (const Error& e) {
        fail("[backward of {}] {}", node->name(), e.what());
      }
    }
    if (!retain_graph) node->release();
    for (std::size_t i = 0; i < node->next.size(); ++i) {
      const auto& child = node->next[i].node;
      if (!child) continue;
      if (i < grads.size() && grads[i].defined()) {
        const Tensor& gi = grads[i];
        PW_CHECK(gi.shape() == node->input_shapes[i],
                 "[backward of {}] gradient for input {} has shape {}, expected {}", node->name(),
                 i, shape_str(gi.shape()), shape_str(node->input_shapes[i]));
        Tensor& buf = buffers[child.get()];
        buf = buf.defined() ? add_values(buf, gi) : gi;
      }
      if (--deps[child.get()] == 0) ready.push_back(child);
    }
  }
}

}  // namespace pw
