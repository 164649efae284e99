// Position-embedding resizing: the patch part of (1, prefix + G*G, D) is treated as a G x G
// image with D channels and resampled like torch.nn.functional.interpolate with
// align_corners=False (bicubic uses the Keys kernel with A = -0.75, as PyTorch).
#include <cmath>

#include "models/vit.h"

namespace pw::models {
namespace {

double cubic_weight(double x) {
  constexpr double A = -0.75;
  x = std::abs(x);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

// Taps and weights for output coordinate o along an axis resized from `in` to `out`.
void taps(std::int64_t o, std::int64_t in, std::int64_t out, bool cubic,
          std::vector<std::int64_t>& idx, std::vector<double>& w) {
  idx.clear();
  w.clear();
  const double src =
      (static_cast<double>(o) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5;
  const auto clampi = [in](std::int64_t i) { return std::clamp<std::int64_t>(i, 0, in - 1); };
  if (cubic) {
    const auto f = static_cast<std::int64_t>(std::floor(src));
    const double t = src - static_cast<double>(f);
    for (std::int64_t k = -1; k <= 2; ++k) {
      idx.push_back(clampi(f + k));
      w.push_back(cubic_weight(static_cast<double>(k) - t));
    }
  } else {
    const double s = std::max(src, 0.0);
    const auto f = static_cast<std::int64_t>(std::floor(s));
    const double t = s - static_cast<double>(f);
    idx.push_back(clampi(f));
    w.push_back(1 - t);
    idx.push_back(clampi(f + 1));
    w.push_back(t);
  }
}

}  // namespace

Tensor resize_pos_embed(const Tensor& pos_embed, std::int64_t prefix, std::int64_t new_grid,
                        const std::string& mode) {
  PW_CHECK(mode == "bicubic" || mode == "bilinear",
           "[resize_pos_embed] mode must be bicubic or bilinear, got '{}'", mode);
  PW_CHECK(pos_embed.dim() == 3 && pos_embed.shape()[0] == 1,
           "[resize_pos_embed] expected (1, T, D), got {}", shape_str(pos_embed.shape()));
  const std::int64_t T = pos_embed.shape()[1], D = pos_embed.shape()[2];
  const auto G =
      static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(T - prefix))));
  PW_CHECK(G * G == T - prefix, "[resize_pos_embed] {} patch tokens do not form a square grid",
           T - prefix);
  const std::vector<double> src = pos_embed.to_vector<double>();
  std::vector<double> dst(static_cast<std::size_t>((prefix + new_grid * new_grid) * D), 0.0);
  std::copy(src.begin(), src.begin() + prefix * D, dst.begin());
  const bool cubic = mode == "bicubic";
  std::vector<std::int64_t> iy, ix;
  std::vector<double> wy, wx;
  for (std::int64_t oy = 0; oy < new_grid; ++oy) {
    taps(oy, G, new_grid, cubic, iy, wy);
    for (std::int64_t ox = 0; ox < new_grid; ++ox) {
      taps(ox, G, new_grid, cubic, ix, wx);
      double* out = &dst[static_cast<std::size_t>((prefix + oy * new_grid + ox) * D)];
      for (std::size_t a = 0; a < iy.size(); ++a)
        for (std::size_t b = 0; b < ix.size(); ++b) {
          const double w = wy[a] * wx[b];
          const double* in = &src[static_cast<std::size_t>((prefix + iy[a] * G + ix[b]) * D)];
          for (std::int64_t d = 0; d < D; ++d) out[d] += w * in[d];
        }
    }
  }
  return copy_contiguous(from_vector(dst, {1, prefix + new_grid * new_grid, D}), pos_embed.dtype());
}

}  // namespace pw::models
