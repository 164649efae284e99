// Position embeddings: MAE's fixed 2-D sine-cosine table, and resizing. Resizing: the patch part of
// (1, prefix + G*G, D) is treated as a G x G image with D channels and resampled like
// torch.nn.functional.interpolate with align_corners=False (bicubic uses the Keys kernel with A =
// -0.75, as PyTorch).
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

Tensor sincos_pos_embed_2d(std::int64_t dim, std::int64_t grid, std::int64_t prefix) {
  PW_CHECK(dim > 0 && dim % 4 == 0 && grid > 0 && prefix >= 0,
           "[sincos_pos_embed_2d] needs a width divisible by 4 and a positive grid, got width {}, "
           "grid {}, prefix {}",
           dim, grid, prefix);
  const std::int64_t quarter = dim / 4;
  std::vector<double> v(static_cast<std::size_t>((prefix + grid * grid) * dim), 0.0);
  for (std::int64_t r = 0; r < grid; ++r)
    for (std::int64_t c = 0; c < grid; ++c) {
      double* e = &v[static_cast<std::size_t>((prefix + r * grid + c) * dim)];
      for (std::int64_t i = 0; i < quarter; ++i) {
        const double omega =
            1.0 / std::pow(10000.0, static_cast<double>(i) / static_cast<double>(quarter));
        const double col = static_cast<double>(c) * omega, row = static_cast<double>(r) * omega;
        e[i] = std::sin(col);
        e[quarter + i] = std::cos(col);
        e[2 * quarter + i] = std::sin(row);
        e[3 * quarter + i] = std::cos(row);
      }
    }
  return copy_contiguous(from_vector(v, {1, prefix + grid * grid, dim}), DType::Float32);
}

Tensor resize_pos_embed(const Tensor& pos_embed, std::int64_t prefix, std::int64_t new_grid,
                        const std::string& mode) {
  PW_CHECK(mode == "bicubic" || mode == "bilinear",
           "[resize_pos_embed] mode must be bicubic or bilinear, got '{}'", mode);
  PW_CHECK(pos_embed.dim() == 3 && pos_embed.shape()[0] == 1,
           "[resize_pos_embed] expected (1, T, D), got {}", shape_str(pos_embed.shape()));
  const std::int64_t T = pos_embed.shape()[1], D = pos_embed.shape()[2];
  // A table from a file may hold no patch tokens at all (or only the prefix): there is then no
  // grid to sample from, and the taps below would clamp into [0, -1].
  PW_CHECK(prefix >= 0 && T - prefix >= 1 && D >= 1,
           "[resize_pos_embed] a position embedding of shape {} holds no patch tokens after {} "
           "prefix token(s)",
           shape_str(pos_embed.shape()), prefix);
  PW_CHECK(new_grid >= 1 && new_grid <= ViTLimits::image_size,
           "[resize_pos_embed] new grid side must be in [1, {}], got {}", ViTLimits::image_size,
           new_grid);
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
