// Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): how
// much each input token flows into each output token through all the layers, treating the
// residual connection as half of the mixing.
#pragma once
#include <cstdint>
#include <vector>

namespace pw::app {

// The attention probabilities of one layer for one image: H heads of (T, T) row-stochastic
// matrices, (H, T, T) row-major (a slice of an Attention's (B, H, T, T) probabilities).
struct LayerAttention {
  std::int64_t heads = 0;
  std::int64_t tokens = 0;
  std::vector<float> probs;
};

// A (T, T) matrix, row-major.
struct TokenMatrix {
  std::int64_t tokens = 0;
  std::vector<double> values;
  double at(std::int64_t row, std::int64_t col) const {
    return values[static_cast<std::size_t>(row * tokens + col)];
  }
};

// The mean over heads of one layer's attention, (T, T).
TokenMatrix mean_over_heads(const LayerAttention& layer);

// R = A'_L ... A'_2 A'_1 with A'_l = rownorm(mean_over_heads(A_l) + I): row i of R says how
// much output token i draws from each input token. Rows sum to one.
TokenMatrix attention_rollout(const std::vector<LayerAttention>& layers);

// What the classifier reads, as a weight per patch (N = T - prefix): with a class token
// (prefix 1) row 0 without its own column; with mean pooling (prefix 0) the mean of all rows.
// Renormalised to sum to one over the patches.
std::vector<double> patch_weights(const TokenMatrix& m, std::int64_t prefix_tokens);

}  // namespace pw::app
