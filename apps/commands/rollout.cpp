#include "apps/commands/rollout.h"

#include "core/error.h"

namespace pw::app {

TokenMatrix mean_over_heads(const LayerAttention& layer) {
  const std::int64_t H = layer.heads, T = layer.tokens;
  PW_CHECK(H > 0 && T > 0 && layer.probs.size() == static_cast<std::size_t>(H * T * T),
           "[rollout] expected (H, T, T) = ({}, {}, {}) probabilities, got {} values", H, T, T,
           layer.probs.size());
  TokenMatrix m{T, std::vector<double>(static_cast<std::size_t>(T * T), 0.0)};
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t i = 0; i < T * T; ++i)
      m.values[static_cast<std::size_t>(i)] += layer.probs[static_cast<std::size_t>(h * T * T + i)];
  for (double& v : m.values) v /= static_cast<double>(H);
  return m;
}

TokenMatrix attention_rollout(const std::vector<LayerAttention>& layers) {
  PW_CHECK(!layers.empty(),
           "[rollout] no attention maps (was keep_attention on during the forward pass?)");
  const std::int64_t T = layers.front().tokens;
  const auto idx = [T](std::int64_t r, std::int64_t c) {
    return static_cast<std::size_t>(r * T + c);
  };
  TokenMatrix rollout{T, std::vector<double>(static_cast<std::size_t>(T * T), 0.0)};
  for (std::int64_t i = 0; i < T; ++i) rollout.values[idx(i, i)] = 1.0;
  for (const auto& layer : layers) {
    PW_CHECK(layer.tokens == T, "[rollout] layers disagree on the token count: {} and {}", T,
             layer.tokens);
    TokenMatrix a = mean_over_heads(layer);
    // The residual stream carries x alongside attention's output: A + I, rows renormalised.
    for (std::int64_t r = 0; r < T; ++r) {
      a.values[idx(r, r)] += 1.0;
      double sum = 0;
      for (std::int64_t c = 0; c < T; ++c) sum += a.values[idx(r, c)];
      for (std::int64_t c = 0; c < T; ++c) a.values[idx(r, c)] /= sum;
    }
    // Later layers act on the output of earlier ones: R <- A' R.
    std::vector<double> next(static_cast<std::size_t>(T * T), 0.0);
    for (std::int64_t r = 0; r < T; ++r)
      for (std::int64_t k = 0; k < T; ++k) {
        const double ark = a.values[idx(r, k)];
        for (std::int64_t c = 0; c < T; ++c) next[idx(r, c)] += ark * rollout.values[idx(k, c)];
      }
    rollout.values = std::move(next);
  }
  return rollout;
}

std::vector<double> patch_weights(const TokenMatrix& m, std::int64_t prefix_tokens) {
  const std::int64_t T = m.tokens, N = T - prefix_tokens;
  PW_CHECK(prefix_tokens >= 0 && N > 0,
           "[rollout] {} tokens with {} prefix tokens leave no patches", T, prefix_tokens);
  std::vector<double> w(static_cast<std::size_t>(N), 0.0);
  if (prefix_tokens > 0) {
    for (std::int64_t p = 0; p < N; ++p)
      w[static_cast<std::size_t>(p)] = m.at(0, prefix_tokens + p);
  } else {
    for (std::int64_t r = 0; r < T; ++r)
      for (std::int64_t p = 0; p < N; ++p)
        w[static_cast<std::size_t>(p)] += m.at(r, p) / static_cast<double>(T);
  }
  double sum = 0;
  for (double v : w) sum += v;
  if (sum > 0)
    for (double& v : w) v /= sum;
  return w;
}

}  // namespace pw::app
