// The kernels behind gelu, softmax and layer_norm on dense row-major arrays: the fast kernel
// each op runs, and beside it the plain reference kernel that tests compare it with and
// benchmarks time it against. Defined for float and double in ops/activation.cpp,
// ops/softmax.cpp and ops/layer_norm.cpp; all run in parallel over the OpenMP threads.
#pragma once
#include <cstdint>

namespace pw::kernels {

// ---- GELU, exact erf form, over n elements ----
// y = x Phi(x)
template <typename T>
void gelu_forward(const T* x, T* y, std::int64_t n);
template <typename T>
void gelu_forward_reference(const T* x, T* y, std::int64_t n);
// dx = g (Phi(x) + x phi(x))
template <typename T>
void gelu_backward(const T* g, const T* x, T* dx, std::int64_t n);
template <typename T>
void gelu_backward_reference(const T* g, const T* x, T* dx, std::int64_t n);

// ---- softmax over each of `rows` contiguous rows of D elements ----
template <typename T>
void softmax_rows_forward(const T* x, T* y, std::int64_t rows, std::int64_t D);
template <typename T>
void softmax_rows_forward_reference(const T* x, T* y, std::int64_t rows, std::int64_t D);
// dx = y (g - sum(g y)) from the saved output y.
template <typename T>
void softmax_rows_backward(const T* g, const T* y, T* dx, std::int64_t rows, std::int64_t D);
template <typename T>
void softmax_rows_backward_reference(const T* g, const T* y, T* dx, std::int64_t rows,
                                     std::int64_t D);

// ---- layer norm over each of R rows of D elements ----
// y = (x - mean) rstd w + b with w, b (D) optional (null); writes mean and rstd (R).
template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::int64_t R,
                        std::int64_t D, double eps);
template <typename T>
void layer_norm_forward_reference(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd,
                                  std::int64_t R, std::int64_t D, double eps);
// From the upstream gradient g and the forward's x, w, mean, rstd: writes dx (R, D), dw and db
// (D), each only when its pointer is not null.
template <typename T>
void layer_norm_backward(const T* g, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                         T* dw, T* db, std::int64_t R, std::int64_t D);
template <typename T>
void layer_norm_backward_reference(const T* g, const T* x, const T* w, const T* mean, const T* rstd,
                                   T* dx, T* dw, T* db, std::int64_t R, std::int64_t D);

}  // namespace pw::kernels
