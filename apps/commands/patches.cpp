#include "apps/commands/patches.h"

#include <fmt/format.h>

#include <memory>
#include <string>

#include "apps/commands/command.h"
#include "apps/image.h"
#include "core/error.h"

namespace pw::app {

data::Image patch_grid(const data::Image& image, int patch, int scale, int gap, std::uint8_t fill) {
  PW_CHECK(patch > 0 && image.height % patch == 0 && image.width % patch == 0,
           "[patches] a {}x{} image does not split into {}x{} patches", image.height, image.width,
           patch, patch);
  PW_CHECK(scale >= 1 && gap >= 0, "[patches] scale must be >= 1 and gap >= 0, got {} and {}",
           scale, gap);
  const int rows = image.height / patch, cols = image.width / patch, tile = patch * scale;
  const std::int64_t out_h = std::int64_t{rows} * tile + std::int64_t{rows - 1} * gap,
                     out_w = std::int64_t{cols} * tile + std::int64_t{cols - 1} * gap;
  PW_CHECK(out_h * out_w * image.channels <= data::kMaxImageBytes,
           "[patches] the grid would be {}x{} pixels, more than the {}-byte limit of an image; "
           "lower --scale, --size or --gap",
           out_h, out_w, data::kMaxImageBytes);
  data::Image out(image.channels, rows * tile + (rows - 1) * gap, cols * tile + (cols - 1) * gap,
                  fill);
  for (int c = 0; c < image.channels; ++c)
    for (int y = 0; y < image.height * scale; ++y)
      for (int x = 0; x < image.width * scale; ++x) {
        // Source pixel (y, x) / scale sits in tile (y / tile, x / tile), shifted by the gaps before
        // it.
        const int oy = y + (y / tile) * gap, ox = x + (x / tile) * gap;
        out.at(c, oy, ox) = image.at(c, y / scale, x / scale);
      }
  return out;
}

namespace {

struct PatchesOptions {
  std::string image;
  std::string out = "patches.png";
  int patch = 4;
  int size = 32;
  int scale = 8;
  int gap = 2;
};

void run_patches(const PatchesOptions& o) {
  data::Image image = load_image(o.image);
  if (o.size > 0) image = resize_bilinear(image, o.size, o.size);
  PW_CHECK(image.height % o.patch == 0 && image.width % o.patch == 0,
           "[--patch] {} does not divide the {}x{} image (see --size)", o.patch, image.height,
           image.width);
  write_png(o.out, patch_grid(image, o.patch, o.scale, o.gap));
  fmt::print("{}: {}x{} image, {} patches of {}x{} ({} x {}); written to {}\n", o.image,
             image.height, image.width, (image.height / o.patch) * (image.width / o.patch), o.patch,
             o.patch, image.height / o.patch, image.width / o.patch, o.out);
}

}  // namespace

void add_patches_command(CLI::App& app) {
  auto o = std::make_shared<PatchesOptions>();
  CLI::App* sub =
      app.add_subcommand("patches", "Draw an image cut into its patches, as a ViT sees it");
  sub->option_defaults()->always_capture_default();
  sub->add_option("image", o->image, "Image file (PNG, JPEG, BMP, PPM)")->required();
  sub->add_option("--patch", o->patch, "Patch side in pixels of the resized image")
      ->check(CLI::Range(1, 4096));
  sub->add_option("-o,--out", o->out, "Output PNG");
  sub->add_option("--size", o->size,
                  "Resize to size x size first, as the model does (0: keep the size)")
      ->check(CLI::Range(0, 4096));
  sub->add_option("--scale", o->scale, "Upscaling factor of each pixel")->check(CLI::Range(1, 64));
  sub->add_option("--gap", o->gap, "White pixels between patches")->check(CLI::Range(0, 256));
  when_chosen(*sub, [o] {
    run_patches(*o);
    return 0;
  });
}

}  // namespace pw::app
