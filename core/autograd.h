// The reverse-mode engine: graph nodes, saved tensors, grad mode, and backward().
//
// Each recorded operation makes one Node whose edges point at the nodes that produced its
// inputs (or at a leaf's gradient accumulator). backward() orders the graph with an explicit
// stack, so a 100,000-op chain neither overflows on backward nor when it is destroyed.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pw {

// Whether operations record a graph (thread-local, on by default).
class GradMode {
 public:
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// Turns recording off for its scope (torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class Node;
struct Edge {
  std::shared_ptr<Node> node;  // null when that input needs no gradient
};

class Node {
 public:
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Releases the chain of predecessors iteratively (no recursion on deep graphs).
  virtual ~Node();

  // Vector-Jacobian product: one gradient per input (undefined where none is needed).
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  virtual std::string name() const = 0;
  // Drops the tensors saved for backward; later apply() calls are an error.
  virtual void release() { released_ = true; }
  bool released() const { return released_; }

  bool needs_input_grad(std::size_t i) const { return i < next.size() && next[i].node != nullptr; }

  std::vector<Edge> next;           // one per input
  std::vector<Shape> input_shapes;  // to check the shapes of returned gradients
  std::vector<DType> input_dtypes;

 protected:
  bool released_ = false;
};

// A node whose backward rule is a closure; the closure owns the node's saved tensors.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output, const Node& node)>;

// A tensor kept for backward: a detached alias plus the storage version at save time, so
// that an in-place change before backward is caught instead of giving a wrong gradient.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  // The saved value; throws if it was modified in place since it was saved.
  Tensor get() const;
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  std::uint64_t version_ = 0;
};

// True when grad mode is on and any defined input requires grad: the op must record a node.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Makes `out` the result of op `name` on `inputs`, with `backward` as its rule. Call it only
// when needs_grad(inputs) holds.
void record(const char* name, Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward);

// Runs backward from `roots` with the given output gradients (engine entry point).
void run_backward(const Tensor& root, const Tensor& grad_output, bool retain_graph);

}  // namespace pw
