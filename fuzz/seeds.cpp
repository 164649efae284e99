// fuzz_seeds OUT: writes the seed corpus of every fuzz target into OUT/<target>/, each seed made
// by patchwork's own writers (safetensors, model files and checkpoints, stb_image_write, the
// tests' CIFAR-10 writers, args.json as `vit train` saves it), so that the corpora are never
// binary files in the repository and follow the formats as they change.
#include <stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/train/options.h"
#include "apps/train/schedule.h"
#include "apps/weights.h"
#include "cifar_fixture.h"
#include "fuzz_util.h"
#include "io/file_io.h"
#include "ops/loss.h"
#include "ops/shape.h"
#include "optim/ema.h"

namespace fs = std::filesystem;
using namespace pw;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The same file without its data checksum, so that the fuzzer's changes to tensor data reach
// the code after the checksum too.
void write_without_checksum(const fs::path& from, const fs::path& to) {
  const SafetensorsFile f = load_safetensors(from.string());
  NamedTensors tensors;
  for (const auto& e : f.entries) tensors.emplace_back(e.name, e.tensor);
  auto metadata = f.metadata;
  metadata.erase(kDataChecksumKey);
  fuzz::write_bytes(to, serialize_safetensors(tensors, metadata));
}

models::ViTConfig tiny(const std::string& stem, const std::string& pool) {
  models::ViTConfig c;
  c.image_size = 8, c.patch_size = 4, c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 8;
  c.num_classes = 3, c.stem = stem, c.pool = pool, c.stem_layers = 1, c.stem_channels = 4;
  return c;
}

// A model file and a checkpoint (after one AdamW step, with a model EMA) of a tiny model.
void write_model_files(const fs::path& dir, const std::string& stem, const std::string& pool) {
  Generator gen(1);
  models::VisionTransformer model(tiny(stem, pool), gen);
  app::ModelInfo info;
  info.config = model.cfg;
  info.normalization.mean = {0.5, 0.5, 0.5};
  info.normalization.std = {0.25, 0.25, 0.25};
  info.classes = {"a", "b", "c"};
  const std::string name = stem + "-" + pool;
  app::save_model_weights((dir / (name + "-model.safetensors")).string(), model, info);

  app::TrainOptions o;
  auto optimizer = app::make_optimizer(o, model);
  app::Schedule schedule = app::make_schedule(o, *optimizer, 2, 4);
  optim::ModelEma ema(model.state_dict());
  const Tensor loss = cross_entropy(model.forward(randn({2, 3, 8, 8}, gen)), tensor({0, 2}, {2}));
  optimizer->zero_grad();
  loss.backward();
  optimizer->step();
  ema.update();
  schedule.per_step->step();
  app::TrainState state;
  state.batch = 1, state.global_step = 1, state.scheduler = schedule.per_step->state_dict();
  const fs::path ckpt = dir / (name + "-checkpoint.safetensors");
  app::save_checkpoint(ckpt.string(), model, info, *optimizer, state, &ema);
  write_without_checksum(ckpt, dir / (name + "-checkpoint-nocrc.safetensors"));
}

void safetensors_seeds(const fs::path& dir) {
  Generator gen(2);
  const NamedTensors tensors{
      {"a", randn({2, 3}, gen)},
      {"b", randn({4}, gen, DType::Float64)},
      {"c", to(randn({1, 2, 2}, gen), DType::BFloat16)},  // randn draws in float32 or float64
      {"empty", zeros({0, 5})}};
  fuzz::write_bytes(dir / "plain.safetensors", serialize_safetensors(tensors));
  fuzz::write_bytes(dir / "metadata.safetensors", serialize_safetensors(tensors, {{"k", "v"}}));
  fuzz::write_bytes(dir / "checksum.safetensors", serialize_safetensors(tensors, {}, true));
  write_model_files(dir, "patch", "cls");
}

void image_seeds(const fs::path& dir) {
  std::vector<std::uint8_t> rgb(8 * 6 * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint8_t>(i * 37);
  const auto path = [&](const char* name) { return (dir / name).string(); };
  stbi_write_png(path("rgb.png").c_str(), 8, 6, 3, rgb.data(), 8 * 3);
  stbi_write_png(path("grey.png").c_str(), 8, 6, 1, rgb.data(), 8);
  stbi_write_bmp(path("rgb.bmp").c_str(), 8, 6, 3, rgb.data());
  stbi_write_jpg(path("rgb.jpg").c_str(), 8, 6, 3, rgb.data(), 90);
  std::string ppm = "P6\n8 6\n255\n", pgm = "P5 8 6 255\n";
  ppm.append(rgb.begin(), rgb.end());
  pgm.append(rgb.begin(), rgb.begin() + 8 * 6);
  write_text(dir / "rgb.ppm", ppm);
  write_text(dir / "grey.pgm", pgm);
}

// Two records per training file and one test record, as files and as archives.
std::vector<std::pair<std::string, std::vector<std::uint8_t>>> cifar_files(const fs::path& tmp) {
  const fs::path bins = testing::write_synthetic_cifar(tmp, 10, 1);
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> files;
  for (const char* name :
       {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
        "data_batch_5.bin", "test_batch.bin", "batches.meta.txt"})
    files.emplace_back(name, read_file((bins / name).string()));
  return files;
}

void cifar_seeds(const fs::path& archive_dir, const fs::path& folder_dir, const fs::path& tmp) {
  const auto files = cifar_files(tmp);
  std::vector<testing::TarEntry> entries;
  for (const auto& [name, bytes] : files) entries.push_back({name, bytes});
  const auto with_flag = [](std::uint8_t flag, const fs::path& archive) {
    std::vector<std::uint8_t> seed{flag};
    const auto bytes = read_file(archive.string());
    seed.insert(seed.end(), bytes.begin(), bytes.end());
    return seed;
  };
  const fs::path a = tmp / "a.tar.gz";
  testing::write_tar_gz(a, entries);
  fuzz::write_bytes(archive_dir / "all.seed", with_flag(0, a));
  fuzz::write_bytes(archive_dir / "limited.seed", with_flag(1, a));
  // A pax header naming the next entry, and a GNU long name.
  const std::string pax_record = "cifar-10-batches-bin/test_batch.bin";
  // "<len> path=<value>\n", <len> counting its own digits too.
  const std::string record = " path=" + pax_record + "\n";
  std::string pax = std::to_string(record.size()) + record;
  pax = std::to_string(pax.size()) + record;
  std::vector<testing::TarEntry> named = entries;
  named.insert(named.begin() + 5, {"pax", {pax.begin(), pax.end()}, 'x'});
  named.insert(named.begin() + 6, {"././@LongLink", {pax_record.begin(), pax_record.end()}, 'L'});
  testing::write_tar_gz(a, named);
  fuzz::write_bytes(archive_dir / "long-names.seed", with_flag(0, a));

  std::vector<std::uint8_t> folder{0};
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (i) {
      const std::string sep = "\n#FILE#\n";
      folder.insert(folder.end(), sep.begin(), sep.end());
    }
    folder.insert(folder.end(), files[i].second.begin(), files[i].second.end());
  }
  fuzz::write_bytes(folder_dir / "all.seed", folder);
  folder[0] = 1;
  fuzz::write_bytes(folder_dir / "limited.seed", folder);
}

void resume_seeds(const fs::path& dir) {
  app::TrainOptions o;
  write_text(dir / "default.json", nlohmann::json(o).dump(2));
  o.model = {"stem=conv", "pool=attn", "dim=64"};
  o.time_budget = "30m";
  o.model_ema = true;
  o.sched = "multistep";
  write_text(dir / "budget.json", nlohmann::json(o).dump(2));
}

void override_seeds(const fs::path& dir) {
  write_text(dir / "patch.txt", "depth=2\ndim=16\nheads=4\nmlp_dim=32\npool=mean");
  write_text(dir / "conv.txt",
             "stem=conv\nstem_layers=2\nstem_channels=4\nstem_kernel=3\nstem_pool=max\npool=attn\n"
             "pos_embed=none");
  write_text(dir / "sincos.txt", "pos_embed=sincos\nhead_hidden=8\nhead_dim=4\nqkv_bias=false");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path tmp = out / ".tmp";
  for (const char* target : {"safetensors", "checkpoint", "image", "cifar_archive", "cifar_folder",
                             "resume_args", "model_overrides"})
    fs::create_directories(out / target);
  fs::create_directories(tmp);
  try {
    safetensors_seeds(out / "safetensors");
    write_model_files(out / "checkpoint", "patch", "cls");
    write_model_files(out / "checkpoint", "conv", "attn");
    write_model_files(out / "checkpoint", "patch", "mean");
    image_seeds(out / "image");
    cifar_seeds(out / "cifar_archive", out / "cifar_folder", tmp);
    resume_seeds(out / "resume_args");
    override_seeds(out / "model_overrides");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", e.what());
    return 1;
  }
  fs::remove_all(tmp);
  return 0;
}
