// Image folders and fine-tuning: the transforms (eval crop, RandomResizedCrop) by hand, reading
// a folder (class order, conversions, the memory budget, the val split), each bad input's
// message, and `vit train` / eval / predict / resume on a synthetic folder, from scratch and
// from a model of another size and class count.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apps/commands/attention.h"
#include "apps/commands/command.h"
#include "apps/commands/eval.h"
#include "apps/commands/predict.h"
#include "apps/train/trainer.h"
#include "apps/weights.h"
#include "cifar_fixture.h"
#include "core/autograd.h"
#include "data/cifar10.h"
#include "data/decode.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "data/resize.h"
#include "folder_fixture.h"
#include "ops/elementwise.h"

using namespace pw;
using namespace pw::app;
using Catch::Matchers::Contains;
using pw::testing::records;
namespace fs = std::filesystem;

namespace {

// An image whose pixel (c, y, x) is c * 100 + y * 10 + x (small sides), to see where crops
// come from.
data::Image position_image(int h, int w) {
  data::Image img(3, h, w);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) img.at(c, y, x) = static_cast<std::uint8_t>(c * 100 + y * 10 + x);
  return img;
}

std::vector<double> step_losses(const fs::path& run) {
  std::vector<double> out;
  for (const auto& r : records(run, "step")) out.push_back(r["loss"].get<double>());
  return out;
}

TrainOptions folder_options(const fs::path& root, const fs::path& out, const std::string& name) {
  TrainOptions o;
  o.dataset = "folder";
  o.data = root.string();
  o.output = out.string();
  o.name = name;
  o.progress = false;
  o.workers = 1;
  o.img_size = 16;
  o.model = {"depth=1", "dim=32", "heads=2", "mlp_dim=64"};
  o.batch_size = 8;
  o.log_every = 1;
  return o;
}

// The per-channel mean and std of every pixel of the files, decoded one by one.
data::Normalization stats_of(const std::vector<fs::path>& files) {
  double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0}, n = 0;
  for (const auto& f : files) {
    const data::Image img = data::load_image(f);
    const std::size_t plane = static_cast<std::size_t>(img.height) * img.width;
    n += static_cast<double>(plane);
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t i = 0; i < plane; ++i) {
        const double v = img.pixels[c * plane + i] / 255.0;
        sum[c] += v;
        sq[c] += v * v;
      }
  }
  data::Normalization out;
  for (std::size_t c = 0; c < 3; ++c) {
    out.mean[c] = sum[c] / n;
    out.std[c] = std::sqrt(sq[c] / n - out.mean[c] * out.mean[c]);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- transforms

TEST_CASE("the eval transform resizes the shorter side to size / crop_pct and crops the centre",
          "[folder]") {
  // torchvision's Resize(18) of a 40x20 (h x w) image: w -> 18, h -> int(18 * 40 / 20) = 36.
  CHECK(data::resize_shorter_side(position_image(40, 20), 18).height == 36);
  CHECK(data::resize_shorter_side(position_image(20, 40), 18).width == 36);
  CHECK(data::resize_shorter_side(position_image(7, 10), 3).width == 4);  // int(4.28)
  // CenterCrop offsets round((H - size) / 2) half to even: (5 - 2) / 2 = 1.5 -> 2, and
  // (6 - 3) / 2 = 1.5 -> 2, (4 - 1) / 2 = 1.5 -> 2, (7 - 2) / 2 = 2.5 -> 2.
  const data::Image img = position_image(7, 5);
  const data::Image c = data::center_crop(img, 2);
  CHECK(c.at(0, 0, 0) == 2 * 10 + 2);
  CHECK(c.at(2, 1, 1) == 200 + 3 * 10 + 3);
  CHECK_THROWS_WITH(data::center_crop(img, 6), Contains("smaller than the 6x6 crop"));
  // size 16, crop_pct 0.875: scale size floor(18.28) = 18.
  const data::Image e = data::eval_transform(position_image(40, 20), 16, 0.875);
  CHECK(e.height == 16);
  CHECK(e.width == 16);
  const data::Image manual =
      data::center_crop(data::resize_shorter_side(position_image(40, 20), 18), 16);
  CHECK(e == manual);
  // crop_pct 1 leaves an image of the right size alone (CIFAR's evaluation).
  const data::Image square = position_image(8, 8);
  CHECK(data::eval_transform(square, 8, 1.0) == square);
  CHECK(data::eval_transform(square, 8, 0.5) != square);
}

TEST_CASE("RandomResizedCrop draws windows within scale and ratio, and falls back to the centre",
          "[folder]") {
  Generator gen(3);
  for (int i = 0; i < 200; ++i) {
    const auto b = data::random_resized_crop_box(30, 40, 0.25, 0.5, 0.75, 4.0 / 3.0, gen);
    REQUIRE(b.top >= 0);
    REQUIRE(b.left >= 0);
    REQUIRE(b.top + b.height <= 30);
    REQUIRE(b.left + b.width <= 40);
    // Rounding the sides moves area and ratio a little off the drawn values.
    const double area = static_cast<double>(b.height * b.width) / (30.0 * 40.0);
    CHECK(area >= 0.25 * 0.85);
    CHECK(area <= 0.5 * 1.15);
    const double ratio = static_cast<double>(b.width) / b.height;
    CHECK(ratio >= 0.75 * 0.85);
    CHECK(ratio <= 4.0 / 3.0 * 1.15);
  }
  // The whole area of a 10x40 image at an aspect ratio of at most 4/3 needs h >= 17 > 10: no
  // try fits, and the fallback is the centred 10 x round(10 * 4/3) = 10 x 13 window.
  const auto f = data::random_resized_crop_box(10, 40, 1.0, 1.0, 0.75, 4.0 / 3.0, gen);
  CHECK(f.top == 0);
  CHECK(f.height == 10);
  CHECK(f.width == 13);
  CHECK(f.left == (40 - 13) / 2);
  // The crop is that window resized: a window of the full image at the output size is a copy.
  const data::Image img = position_image(6, 6);
  CHECK(data::resized_crop(img, {0, 0, 6, 6}, 6) == img);
  const data::Image part = data::resized_crop(img, {1, 2, 2, 2}, 2);
  CHECK(part.at(0, 0, 0) == 12);
  CHECK(part.at(1, 1, 1) == 100 + 23);
  // Reproducible from the generator.
  Generator g1(9), g2(9);
  CHECK(data::random_resized_crop(position_image(20, 30), 8, 0.08, 1, 0.75, 4.0 / 3.0, g1) ==
        data::random_resized_crop(position_image(20, 30), 8, 0.08, 1, 0.75, 4.0 / 3.0, g2));
}

// ---------------------------------------------------------------- reading a folder

TEST_CASE("a folder's classes are sorted, grey and RGBA images converted with a count",
          "[folder]") {
  testing::TempDir tmp("folder-read");
  const fs::path root = tmp.path / "pics";
  // Folder names out of order: labels follow the sorted names.
  testing::write_class_image(root / "train" / "zebra" / "a.png", 0, 12, 10);
  testing::write_class_image(root / "train" / "zebra" / "sub" / "b.JPG", 0, 9, 14);
  testing::write_class_image(root / "train" / "apple" / "grey.png", 1, 8, 8, 1);
  testing::write_class_image(root / "train" / "apple" / "rgba.png", 1, 8, 6, 4);
  testing::write_class_image(root / "train" / "mango" / "m.jpeg", 2, 10, 10);
  std::ofstream(root / "train" / "mango" / "notes.txt") << "not an image\n";
  testing::write_class_image(root / "val" / "apple" / "v.png", 1, 8, 8);
  testing::write_class_image(root / "val" / "zebra" / "v.png", 0, 8, 8);

  data::ImageFolderOptions o;
  const data::Splits s = data::read_image_folder(root, o);
  CHECK(s.train.class_names == std::vector<std::string>{"apple", "mango", "zebra"});
  CHECK(s.test.class_names == s.train.class_names);
  CHECK(s.train.labels == std::vector<std::int64_t>{0, 0, 1, 2, 2});
  CHECK(s.test.labels == std::vector<std::int64_t>{0, 2});
  REQUIRE(s.train.files.size() == 5);
  CHECK(s.train.files[0].filename() == "grey.png");
  CHECK(s.train.files[4].filename() == "b.JPG");  // found in a subfolder, any case
  REQUIRE(s.train.in_memory());
  REQUIRE(s.test.in_memory());
  // Each image in memory is the file's pixels (as RGB) at the file's size.
  for (std::int64_t i = 0; i < s.train.size(); ++i)
    CHECK(s.train.image_at(i) == data::load_image(s.train.files[static_cast<std::size_t>(i)]));
  const data::Image grey = s.train.image_at(0);
  CHECK(grey.at(0, 3, 3) == grey.at(2, 3, 3));
  // The mean and std are those of every pixel of the training files.
  const data::Normalization expect = stats_of(s.train.files);
  for (std::size_t c = 0; c < 3; ++c) {
    CHECK(s.train.normalization.mean[c] == Approx(expect.mean[c]).epsilon(1e-12));
    CHECK(s.train.normalization.std[c] == Approx(expect.std[c]).epsilon(1e-9));
  }
  const std::string notes = fmt::format("{}", fmt::join(s.notes, "\n"));
  CHECK_THAT(notes, Contains("3 classes (apple, mango, zebra)"));
  CHECK_THAT(notes, Contains("converted 1 grey, 1 RGBA images to RGB"));
  CHECK_THAT(notes, Contains("skipped 1 files that are not images") && Contains("notes.txt"));
  CHECK_THAT(notes, Contains("has no images of 1 class: mango"));
  // The evaluation reads only val/, its folders mapped to a model's class list.
  o.read_train = false;
  o.classes = {"apple", "mango", "zebra"};
  const data::Splits v = data::read_image_folder(root, o);
  CHECK(v.train.size() == 0);
  CHECK(v.test.labels == std::vector<std::int64_t>{0, 2});
}

TEST_CASE("over the memory budget the images stay on disk and the loader gives the same batches",
          "[folder]") {
  testing::TempDir tmp("folder-budget");
  testing::write_image_folder(tmp.path, {"a", "b", "c"}, 5, 2);
  data::ImageFolderOptions o;
  const data::Splits in_memory = data::read_image_folder(tmp.path, o);
  o.memory_budget_bytes = 0;
  o.threads = 2;
  const data::Splits on_disk = data::read_image_folder(tmp.path, o);
  CHECK(in_memory.train.in_memory());
  CHECK_FALSE(on_disk.train.in_memory());
  CHECK_FALSE(on_disk.test.in_memory());
  CHECK(on_disk.train.normalization == in_memory.train.normalization);
  CHECK_THAT(fmt::format("{}", fmt::join(on_disk.notes, "\n")),
             Contains("over the memory budget") && Contains("decode them from the files"));
  // Only val/ over the budget: train (15 images of at most 720 pixels) fits, val does not.
  o.memory_budget_bytes = 15 * 720 * 3;
  const data::Splits split = data::read_image_folder(tmp.path, o);
  CHECK(split.train.in_memory());
  CHECK_FALSE(split.test.in_memory());

  data::LoaderConfig lc;
  lc.batch_size = 4;
  lc.num_workers = 2;
  lc.augment.image_size = 12;
  lc.augment.random_resized_crop = true;
  lc.augment.mixup_alpha = 0.4;
  lc.normalization = in_memory.train.normalization;
  data::Loader a(in_memory.train, lc), b(on_disk.train, lc);
  a.start_epoch(1);
  b.start_epoch(1);
  int batches = 0;
  while (auto x = a.next()) {
    auto y = b.next();
    REQUIRE(y.has_value());
    CHECK(x->images.shape() == Shape{x->images.shape()[0], 3, 12, 12});
    CHECK(x->images.to_vector() == y->images.to_vector());
    CHECK(x->soft_targets.to_vector() == y->soft_targets.to_vector());
    ++batches;
  }
  CHECK(batches == 4);  // 15 images, batches of 4
}

TEST_CASE("a --val-split holds out a seeded part of each class", "[folder]") {
  testing::TempDir tmp("folder-split");
  testing::write_image_folder(tmp.path, {"a", "b"}, 8, 0);  // train/ only
  data::ImageFolderOptions o;
  CHECK_THROWS_WITH(data::read_image_folder(tmp.path, o),
                    Contains("has no val/ folder") && Contains("--val-split"));
  o.val_split = 0.25;
  o.seed = 5;
  const data::Splits s = data::read_image_folder(tmp.path, o);
  CHECK(s.train.size() == 12);
  CHECK(s.test.size() == 4);
  CHECK(std::count(s.test.labels.begin(), s.test.labels.end(), 0) == 2);  // round(0.25 * 8)
  std::set<fs::path> all(s.train.files.begin(), s.train.files.end());
  for (const auto& f : s.test.files) CHECK(all.insert(f).second);  // disjoint
  CHECK(all.size() == 16);
  CHECK(data::read_image_folder(tmp.path, o).test.files == s.test.files);  // fixed by the seed
  o.seed = 6;
  CHECK(data::read_image_folder(tmp.path, o).test.files != s.test.files);
}

TEST_CASE("each bad folder input is a one-line error or a counted warning", "[folder]") {
  testing::TempDir tmp("folder-bad");
  const fs::path root = tmp.path / "root";
  testing::write_image_folder(root, {"cat", "dog"}, 2, 1);
  data::ImageFolderOptions o;
  auto message = [&]() -> std::string {
    try {
      data::read_image_folder(root, o);
    } catch (const Error& e) {
      const std::string m = e.what();
      CHECK(m.find('\n') == std::string::npos);
      return m;
    }
    return "(no error)";
  };
  REQUIRE(message() == "(no error)");

  SECTION("an empty class folder") {
    fs::create_directories(root / "train" / "eel");
    CHECK_THAT(message(), Contains("class folder") && Contains("eel holds no images"));
  }
  SECTION("a class folder holding only files that are not images") {
    std::ofstream(root / "train" / "dog" / "readme.txt") << "x";
    fs::create_directories(root / "train" / "eel");
    std::ofstream(root / "train" / "eel" / "readme.txt") << "x";
    CHECK_THAT(message(), Contains("eel holds no images") && Contains(".png .jpg"));
  }
  SECTION("a file that is not an image though named like one") {
    std::ofstream(root / "train" / "cat" / "fake.png") << "this is text";
    CHECK_THAT(message(), Contains("cannot decode") && Contains("fake.png"));
  }
  SECTION("an image cut short: its header reads, its pixels do not") {
    const fs::path good = root / "train" / "cat" / "img0.png";
    const auto size = fs::file_size(good);
    fs::resize_file(good, size / 2);
    CHECK_THAT(message(), Contains("cannot decode") && Contains("img0.png"));
  }
  SECTION("a file that cannot be opened") {
    const fs::path f = root / "train" / "dog" / "img0.png";
    if (::geteuid() == 0) {
      SUCCEED("running as root: permissions do not stop reading");  // skipped
    } else {
      ::chmod(f.c_str(), 0);
      CHECK_THAT(message(),
                 Contains("cannot read") && Contains("img0.png") && Contains("Permission denied"));
      ::chmod(f.c_str(), 0644);
    }
  }
  SECTION("a class in val/ that train/ does not have") {
    testing::write_class_image(root / "val" / "emu" / "e.png", 0, 8, 8);
    CHECK_THAT(message(), Contains("class 'emu' is not among the 2 training classes (cat, dog)"));
  }
  SECTION("no class folders, no folder, both val/ and --val-split") {
    fs::remove_all(root / "train" / "cat");
    fs::remove_all(root / "train" / "dog");
    CHECK_THAT(message(), Contains("has no class folders"));
    const fs::path missing = tmp.path / "nowhere";
    CHECK_THROWS_WITH(data::read_image_folder(missing, o), Contains("no such folder"));
    o.val_split = 0.2;
    CHECK_THAT(message(), Contains("use it or the split, not both"));
  }
}

// ---------------------------------------------------------------- vit train on a folder

TEST_CASE("a tiny ViT trains on an image folder to 100% train accuracy; eval, predict, metadata",
          "[folder][train]") {
  testing::TempDir tmp("folder-train");
  const fs::path root = tmp.path / "shapes";
  testing::write_image_folder(root, {"cat", "ant", "bee"}, 6, 3);
  TrainOptions o = folder_options(root, tmp.path / "runs", "run");
  o.epochs = 15;
  o.lr = 3e-3;
  o.warmup_epochs = 1;
  o.augment = "none";
  o.smoothing = 0;
  o.weight_decay = 0;
  o.eval_every = 15;
  const TrainResult r = train(o);
  const auto epochs = records(r.run_dir, "epoch");
  REQUIRE(epochs.size() == 15);
  CHECK(epochs.back()["train_accuracy"].get<double>() == 1.0);
  CHECK(r.final_accuracy == 1.0);

  // The metadata: the sorted class names, the data set and its crop, the training images' stats.
  const fs::path weights = fs::path(r.run_dir) / "model.safetensors";
  const LoadedModel loaded = load_model_file(weights.string());
  CHECK(loaded.info.classes == std::vector<std::string>{"ant", "bee", "cat"});
  CHECK(loaded.info.dataset == "folder");
  CHECK(loaded.info.crop_pct == 0.875);
  CHECK(loaded.info.config.image_size == 16);
  CHECK(loaded.info.config.num_classes == 3);
  data::ImageFolderOptions fo;
  const data::Splits s = data::read_image_folder(root, fo);
  CHECK(loaded.info.normalization == s.train.normalization);

  // vit eval reads the folder's val/ as the model's classes say, and agrees with training.
  EvalOptions eo;
  eo.weights = weights.string();
  eo.data = root.string();
  const EvalReport rep = run_eval(eo);
  CHECK(rep.accuracy == r.final_accuracy);
  REQUIRE(rep.per_class_accuracy.size() == 3);

  // vit predict names the class of a file by the metadata's names.
  auto model = build_model(loaded);
  const ImagePrediction p =
      predict_image(*model, loaded.info, (root / "val" / "bee" / "photo1.jpg").string(), 3);
  CHECK(p.top[0].name == "bee");
  CHECK(p.probabilities.size() == 3);

  // vit attention draws the image at the model's 16x16 with its 4x4 token grid.
  CLI::App app;
  add_attention_command(app);
  const fs::path png = tmp.path / "attention.png";
  app.parse(fmt::format("attention --weights {} {} -o {} --scale 2", weights.string(),
                        (root / "val" / "cat" / "img0.png").string(), png.string()),
            false);
  REQUIRE(run_chosen_command() == 0);
  const data::ImageHeader h = data::read_image_header(png);
  CHECK(h.height == 32);
  CHECK(h.width == 2 * 32 + 2);
}

TEST_CASE("vit train and eval on CIFAR-100, fine or coarse labels", "[cifar100][train]") {
  testing::TempDir tmp("cifar100-train");
  // 40 training and 20 test records of cifar-100-binary/ (official names of the meta files are
  // left out: the reader then uses the official class names).
  const fs::path dir = tmp.path / "cifar-100-binary";
  fs::create_directories(dir);
  Generator gen(2);
  for (const auto& [file, n] : {std::pair{"train.bin", 40}, std::pair{"test.bin", 20}}) {
    std::ofstream out(dir / file, std::ios::binary);
    for (int r = 0; r < n; ++r) {
      out.put(static_cast<char>(r % 20));         // coarse
      out.put(static_cast<char>((r * 7) % 100));  // fine
      for (int p = 0; p < 3072; ++p) out.put(static_cast<char>(gen.randint(256)));
    }
  }
  for (const std::string labels : {"fine", "coarse"}) {
    TrainOptions o;
    o.dataset = "cifar100";
    o.cifar100_labels = labels;
    o.data = tmp.path.string();
    o.output = (tmp.path / "runs").string();
    o.name = labels;
    o.progress = false;
    o.model = {"depth=1", "dim=32", "heads=2", "mlp_dim=64"};
    o.epochs = 1;
    o.batch_size = 20;
    const TrainResult r = train(o);
    const fs::path weights = fs::path(r.run_dir) / "model.safetensors";
    const LoadedModel m = load_model_file(weights.string());
    const std::size_t classes = labels == "fine" ? 100 : 20;
    CHECK(m.info.config.num_classes == static_cast<std::int64_t>(classes));
    REQUIRE(m.info.classes.size() == classes);
    CHECK(m.info.classes[1] == (labels == "fine" ? "aquarium_fish" : "fish"));
    CHECK(m.info.dataset == "cifar100");
    CHECK(m.info.labels == labels);
    CHECK(m.info.normalization == data::cifar100_layout().normalization);
    // vit eval takes the data set and the label set from the weights.
    EvalOptions eo;
    eo.weights = weights.string();
    eo.data = tmp.path.string();
    const EvalReport rep = run_eval(eo);
    CHECK(rep.accuracy == r.final_accuracy);
    CHECK(rep.per_class_accuracy.size() == classes);
  }
}

TEST_CASE("a folder run with RandomResizedCrop, a val split and images on disk resumes exactly",
          "[folder][train]") {
  testing::TempDir tmp("folder-resume");
  const fs::path root = tmp.path / "pics";
  testing::write_image_folder(root, {"x", "y"}, 10, 0);
  auto options = [&](const std::string& name, std::int64_t cache_mb) {
    TrainOptions o = folder_options(root, tmp.path / "runs", name);
    o.epochs = 3;
    o.val_split = 0.2;    // 16 train, 4 val: 2 steps an epoch
    o.augment = "basic";  // RandomResizedCrop and flip
    o.mixup = 0.2;
    o.dropout = 0.1;
    o.cache_mb = cache_mb;
    o.workers = 2;
    return o;
  };
  const TrainResult full = train(options("full", 2048));
  const TrainResult on_disk = train(options("disk", 0));
  TrainOptions first = options("split", 0);
  first.stop_after_steps = 3;
  const TrainResult stopped = train(first);
  REQUIRE(stopped.interrupted);
  // --resume with the saved args.json, as the command line does it.
  CLI::App app;
  TrainOptions cli;
  add_train_flags(app, cli);
  app.parse("--resume " + stopped.run_dir, false);
  const TrainResult resumed = train(merge_resume_options(cli, app));
  CHECK_FALSE(resumed.interrupted);
  const auto a = step_losses(full.run_dir);
  REQUIRE(a.size() == 6);
  CHECK(a == step_losses(on_disk.run_dir));  // decoding on the fly changes nothing
  CHECK(a == step_losses(resumed.run_dir));  // bit for bit
  CHECK(full.final_accuracy == resumed.final_accuracy);
  const auto args = nlohmann::json::parse(std::ifstream(fs::path(stopped.run_dir) / "args.json"));
  CHECK(args["dataset"] == "folder");
  CHECK(args["val_split"] == 0.2);
  // The held-out split is evaluated again by vit eval from the metadata's split and seed.
  EvalOptions eo;
  eo.weights = (fs::path(full.run_dir) / "model.safetensors").string();
  eo.data = root.string();
  CHECK(run_eval(eo).accuracy == full.final_accuracy);
}

TEST_CASE("bad folder training input names the flag", "[folder][train]") {
  testing::TempDir tmp("folder-flags");
  const fs::path root = tmp.path / "pics";
  testing::write_image_folder(root, {"x", "y", "z"}, 2, 1);
  TrainOptions o = folder_options(root, tmp.path / "runs", "run");
  o.data = "";
  CHECK_THROWS_WITH(train(o), Contains("[--data] --dataset folder needs --data ROOT"));
  o = folder_options(root, tmp.path / "runs", "run");
  o.model.push_back("num_classes=10");
  CHECK_THROWS_WITH(train(o), Contains("[--model] num_classes=10, but the data has 3 classes"));
  o = folder_options(root, tmp.path / "runs", "run");
  o.model.push_back("image_size=32");
  CHECK_THROWS_WITH(train(o), Contains("[--img-size] 16 contradicts --model image_size=32"));
  o = folder_options(root, tmp.path / "runs", "run");
  o.img_size = 18;
  CHECK_THROWS_WITH(train(o), Contains("not a multiple of patch_size 4"));
  o = folder_options(root, tmp.path / "runs", "run");
  o.scale = {0.5, 0.1};
  CHECK_THROWS_WITH(train(o), Contains("[--scale]"));
}

// ---------------------------------------------------------------- fine-tuning

TEST_CASE("prepare_head_for_finetuning keeps a head that fits and replaces one that does not",
          "[finetune]") {
  models::ViTConfig c = models::vit_preset("nano");
  c.depth = 1;
  c.num_classes = 3;
  Generator g(1);
  const models::VisionTransformer three(c, g);
  c.num_classes = 10;
  const models::VisionTransformer ten(c, g);
  const std::vector<std::string> abc{"a", "b", "c"};
  auto head_of = [](const NamedTensors& w) {
    std::vector<float> v;
    for (const auto& [name, t] : w)
      if (name == "head.weight") v = t.to_vector();
    return v;
  };
  NamedTensors w = three.state_dict();
  CHECK(prepare_head_for_finetuning(three, w, abc, abc, false).empty());
  CHECK(head_of(w) == head_of(three.state_dict()));
  const std::string renamed = prepare_head_for_finetuning(three, w, {"x", "y", "z"}, abc, false);
  CHECK_THAT(renamed, Contains("the head is kept") && Contains("--reset-head"));
  // Another class count: the 10-class head is dropped for the model's fresh one.
  w = ten.state_dict();
  const std::string replaced = prepare_head_for_finetuning(three, w, {"0", "1"}, abc, false);
  CHECK_THAT(replaced, Contains("classifies 2 classes") && Contains("the data has 3") &&
                           Contains("replaced by a fresh one"));
  CHECK(head_of(w) == head_of(three.state_dict()));
  CHECK(w.size() == three.state_dict().size());
  // --reset-head replaces a head that fits.
  w = three.state_dict();
  for (auto& [name, t] : w)
    if (name == "head.weight") t = mul(t, 2.0);
  CHECK_THAT(prepare_head_for_finetuning(three, w, abc, abc, true), Contains("--reset-head"));
  CHECK(head_of(w) == head_of(three.state_dict()));
}

TEST_CASE("training with --init fine-tunes a 10-class 16px model on a 3-class folder at 32px",
          "[finetune]") {
  testing::TempDir tmp("finetune");
  const fs::path root = tmp.path / "pics";
  testing::write_image_folder(root, {"x", "y", "z"}, 3, 1);
  // The "CIFAR-10" model: 16x16 images, 4x4 patches (a 4x4 grid), 10 classes.
  models::ViTConfig c = models::vit_preset("nano");
  c.depth = 1;
  c.dim = 32;
  c.heads = 2;
  c.mlp_dim = 64;
  c.image_size = 16;
  Generator g(11);
  const models::VisionTransformer source(c, g);
  ModelInfo info;
  info.config = c;
  info.classes = data::default_class_names();
  const fs::path init = tmp.path / "cifar.safetensors";
  save_model_weights(init.string(), source, info);

  TrainOptions o = folder_options(root, tmp.path / "runs", "ft");
  o.model.clear();  // the architecture comes from --init
  o.init = init.string();
  o.img_size = 32;
  o.epochs = 1;
  o.opt = "sgd";  // a zero learning rate keeps the loaded weights as they are
  o.momentum = 0;
  o.lr = 0;
  o.warmup_epochs = 0;
  o.sched = "constant";
  o.weight_decay = 0;
  const TrainResult r = train(o);
  const LoadedModel tuned = load_model_file((fs::path(r.run_dir) / "model.safetensors").string());
  CHECK(tuned.info.config.image_size == 32);
  CHECK(tuned.info.config.num_classes == 3);
  CHECK(tuned.info.config.dim == 32);
  std::map<std::string, Tensor> got(tuned.weights.begin(), tuned.weights.end());
  const NamedTensors before = source.state_dict();
  for (const auto& [name, t] : before) {
    INFO(name);
    if (name == "pos_embed") {
      // The 4x4 grid resized to 8x8 (bicubic), the class token's row kept.
      const Tensor resized = models::resize_pos_embed(t, 1, 8);
      REQUIRE(got[name].shape() == Shape{1, 65, 32});
      CHECK(got[name].to_vector() == resized.to_vector());
    } else if (name.rfind("head.", 0) == 0) {
      CHECK(got[name].shape()[0] == 3);  // a fresh 3-class head
    } else {
      CHECK(got[name].to_vector() == t.to_vector());  // loaded as they were
    }
  }
  // The fresh head is the one the run's seed initialises.
  models::ViTConfig tc = tuned.info.config;
  Generator seed_gen(o.seed);
  const models::VisionTransformer fresh(tc, seed_gen);
  for (const auto& [name, t] : fresh.state_dict())
    if (name.rfind("head.", 0) == 0) CHECK(got[name].to_vector() == t.to_vector());
}
