#include "data/image_folder.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/random.h"
#include "data/decode.h"

namespace pw::data {
namespace fs = std::filesystem;

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> extensions{".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm"};
  return extensions;
}

namespace {

// The files of one split before reading: paths and labels, in class then path order.
struct FileList {
  std::vector<fs::path> files;
  std::vector<std::int64_t> labels;
};

// What the listing passed over, for the notes.
struct Skipped {
  std::int64_t count = 0;
  fs::path example;
  void add(const fs::path& p) {
    if (count++ == 0) example = p;
  }
};

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto& all = image_extensions();
  return std::find(all.begin(), all.end(), ext) != all.end();
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

std::string list_extensions() {
  std::string s;
  for (const auto& e : image_extensions()) s += (s.empty() ? "" : " ") + e;
  return s;
}

// The class folders of a split folder, sorted by name; files beside them and hidden folders are
// counted as skipped.
std::vector<std::string> class_folders(const fs::path& dir, Skipped& skipped) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code type_ec;
    if (entry.is_directory(type_ec) && !is_hidden(entry.path()))
      names.push_back(entry.path().filename().string());
    else
      skipped.add(entry.path());
  }
  PW_CHECK(!ec, "[folder] cannot list {}: {}", dir.string(), ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

// The image files under one class folder, found recursively (following links, as torchvision's
// os.walk(followlinks=True)), sorted by path.
std::vector<fs::path> class_images(const fs::path& dir, Skipped& skipped) {
  std::vector<fs::path> files;
  std::error_code ec;
  const auto opts = fs::directory_options::follow_directory_symlink;
  for (auto it = fs::recursive_directory_iterator(dir, opts, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_directory(type_ec)) continue;
    if (!is_hidden(it->path()) && is_image_file(it->path()))
      files.push_back(it->path());
    else
      skipped.add(it->path());
  }
  PW_CHECK(!ec, "[folder] cannot list {}: {}", dir.string(), ec.message());
  std::sort(files.begin(), files.end());
  PW_CHECK(!files.empty(), "[folder] class folder {} holds no images (looked for {})", dir.string(),
           list_extensions());
  return files;
}

// Lists a split folder whose class folders must be among `classes` (labels index into it).
FileList list_split(const fs::path& dir, const std::vector<std::string>& classes, Skipped& skipped,
                    std::vector<std::string>* missing_classes) {
  FileList out;
  std::vector<bool> seen(classes.size(), false);
  for (const auto& name : class_folders(dir, skipped)) {
    const auto it = std::find(classes.begin(), classes.end(), name);
    PW_CHECK(it != classes.end(),
             "[folder] {}: class '{}' is not among the {} training classes ({})",
             (dir / name).string(), name, classes.size(), fmt::join(classes, ", "));
    const auto label = static_cast<std::int64_t>(it - classes.begin());
    seen[static_cast<std::size_t>(label)] = true;
    for (auto& f : class_images(dir / name, skipped)) {
      out.files.push_back(std::move(f));
      out.labels.push_back(label);
    }
  }
  if (missing_classes)
    for (std::size_t c = 0; c < classes.size(); ++c)
      if (!seen[c]) missing_classes->push_back(classes[c]);
  return out;
}

// A seeded permutation of 0..n-1 (Fisher-Yates), from its own stream of the seed.
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::uint64_t stream) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  Generator gen(seed ^ stream);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<std::size_t>(i)],
              p[static_cast<std::size_t>(gen.randint(static_cast<std::uint64_t>(i + 1)))]);
  return p;
}

FileList take(const FileList& from, std::vector<std::int64_t> indices) {
  std::sort(indices.begin(), indices.end());  // keep class then path order
  FileList out;
  for (auto i : indices) {
    out.files.push_back(from.files[static_cast<std::size_t>(i)]);
    out.labels.push_back(from.labels[static_cast<std::size_t>(i)]);
  }
  return out;
}

// Holds out round(fraction * n) images of each class (at most n - 1), drawn by the seed.
std::pair<FileList, FileList> split_off(const FileList& all, double fraction, std::uint64_t seed) {
  std::map<std::int64_t, std::vector<std::int64_t>> by_class;
  for (std::size_t i = 0; i < all.labels.size(); ++i)
    by_class[all.labels[i]].push_back(static_cast<std::int64_t>(i));
  std::vector<std::int64_t> train, val;
  for (const auto& [label, members] : by_class) {
    const auto n = static_cast<std::int64_t>(members.size());
    const std::int64_t k =
        std::min(n - 1, static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(n))));
    const auto order = permutation(n, seed, 0x76616c00ULL + static_cast<std::uint64_t>(label));
    for (std::int64_t j = 0; j < n; ++j)
      (j < k ? val : train).push_back(members[static_cast<std::size_t>(order[j])]);
  }
  return {take(all, train), take(all, val)};
}

FileList limited(const FileList& all, std::int64_t limit, std::uint64_t seed,
                 std::uint64_t stream) {
  const auto n = static_cast<std::int64_t>(all.files.size());
  if (limit < 0 || limit >= n) return all;
  auto order = permutation(n, seed, stream);
  order.resize(static_cast<std::size_t>(limit));
  return take(all, order);
}

// Runs fn(i) for i in [0, n) on `threads` threads; the error of the lowest failing index is
// rethrown, so the message does not depend on timing.
template <typename F>
void parallel_each(std::int64_t n, int threads, F&& fn) {
  std::atomic<std::int64_t> next{0};
  std::mutex mutex;
  std::int64_t failed_at = n;
  std::exception_ptr error;
  auto work = [&] {
    for (std::int64_t i = next++; i < n; i = next++) {
      try {
        check_interrupt("folder");  // a stop request ends the reading within an image
        fn(i);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (i < failed_at) failed_at = i, error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<std::int64_t>(threads, n); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// Per-channel sums of pixel values and of their squares: exact integers, so the totals do not
// depend on the order they are added in.
struct ChannelSums {
  std::uint64_t pixels = 0;
  std::uint64_t sum[3] = {0, 0, 0};
  std::uint64_t sum_sq[3] = {0, 0, 0};
  void add(const std::uint8_t* chw, std::int64_t plane) {
    pixels += static_cast<std::uint64_t>(plane);
    for (int c = 0; c < 3; ++c)
      for (std::int64_t i = 0; i < plane; ++i) {
        const std::uint64_t v = chw[c * plane + i];
        sum[c] += v;
        sum_sq[c] += v * v;
      }
  }
  void add(const ChannelSums& o) {
    pixels += o.pixels;
    for (int c = 0; c < 3; ++c) sum[c] += o.sum[c], sum_sq[c] += o.sum_sq[c];
  }
};

std::string megabytes(std::int64_t bytes) {
  return fmt::format("{:.1f} MB", static_cast<double>(bytes) / (1 << 20));
}

// Reads the listed images into a Dataset: headers of all, pixels into memory when `budget`
// allows, the channel sums when asked. Returns the bytes kept in memory.
std::int64_t read_split(const FileList& list, const std::string& what, std::int64_t budget,
                        const ImageFolderOptions& o, Dataset& out, ChannelSums* sums,
                        std::map<int, std::int64_t>& converted, std::vector<std::string>& notes) {
  const auto n = static_cast<std::int64_t>(list.files.size());
  out.files = list.files;
  out.labels = list.labels;
  std::vector<ImageHeader> headers(static_cast<std::size_t>(n));
  parallel_each(n, o.threads, [&](std::int64_t i) {
    const auto k = static_cast<std::size_t>(i);
    headers[k] = read_image_header(list.files[k]);
  });
  std::int64_t bytes = 0;
  out.sizes.resize(static_cast<std::size_t>(n));
  out.offsets.resize(static_cast<std::size_t>(n));
  for (std::size_t k = 0; k < headers.size(); ++k) {
    out.sizes[k] = {headers[k].height, headers[k].width};
    out.offsets[k] = bytes;
    bytes += 3LL * headers[k].height * headers[k].width;
    if (headers[k].channels != 3) ++converted[headers[k].channels];
  }
  const bool keep = bytes <= budget;
  if (keep) out.images.resize(static_cast<std::size_t>(bytes));
  if (keep || sums) {
    std::vector<ChannelSums> per_image(sums ? headers.size() : 0);
    parallel_each(n, o.threads, [&](std::int64_t i) {
      const auto k = static_cast<std::size_t>(i);
      const Image img = load_image(list.files[k]);
      PW_CHECK(img.height == out.sizes[k].height && img.width == out.sizes[k].width,
               "[folder] {}: decoded {}x{}, but its header says {}x{}", list.files[k].string(),
               img.height, img.width, out.sizes[k].height, out.sizes[k].width);
      if (keep)
        std::copy(img.pixels.begin(), img.pixels.end(), out.images.begin() + out.offsets[k]);
      if (sums)
        per_image[k].add(img.pixels.data(), static_cast<std::int64_t>(img.height) * img.width);
    });
    for (const auto& s : per_image) sums->add(s);
  }
  notes.push_back(
      keep ? fmt::format("{}: {} images, {} decoded in memory", what, n, megabytes(bytes))
           : fmt::format("{}: {} images, {} decoded, over the memory budget ({} of it left): the "
                         "loader's worker threads decode them from the files each epoch",
                         what, n, megabytes(bytes), megabytes(std::max<std::int64_t>(0, budget))));
  return keep ? bytes : 0;
}

}  // namespace

Splits read_image_folder(const fs::path& root, const ImageFolderOptions& o) {
  std::error_code ec;
  PW_CHECK(fs::is_directory(root, ec), "[folder] --data {}: no such folder", root.string());
  PW_CHECK(o.val_split >= 0 && o.val_split < 1, "[--val-split] must be in [0, 1), got {}",
           o.val_split);
  // train/ and val/ (or validation/, as timm looks for) under the root; without train/, the root
  // itself is the training folder, whose val part then comes from --val-split.
  const fs::path train_dir = fs::is_directory(root / "train", ec) ? root / "train" : root;
  fs::path val_dir;
  if (train_dir != root)
    for (const char* name : {"val", "validation"})
      if (val_dir.empty() && fs::is_directory(root / name, ec)) val_dir = root / name;
  PW_CHECK(val_dir.empty() || o.val_split == 0,
           "[--val-split] {} already has a validation folder {}: use it or the split, not both",
           root.string(), val_dir.string());
  PW_CHECK(train_dir != root || !fs::is_directory(root / "val", ec),
           "[folder] {} has a val/ folder but no train/ folder beside it", root.string());
  PW_CHECK(!val_dir.empty() || o.val_split > 0,
           "[folder] {} has no val/ folder: expected {}/train/<class>/<image> and "
           "{}/val/<class>/<image>, or pass --val-split to hold out part of the training images",
           root.string(), root.string(), root.string());

  Splits out;
  Skipped skipped;
  std::vector<std::string> classes = o.classes;
  FileList train, val;
  if (o.read_train || val_dir.empty()) {
    Skipped listed_again;  // list_split counts what it skips
    if (classes.empty()) classes = class_folders(train_dir, listed_again);
    PW_CHECK(!classes.empty(), "[folder] {} has no class folders (expected {}/<class>/<image>)",
             train_dir.string(), train_dir.string());
    std::vector<std::string> absent;
    train = list_split(train_dir, classes, skipped, &absent);
    PW_CHECK(absent.empty(), "[folder] {} has no folder for class{} {} of the model",
             train_dir.string(), absent.size() > 1 ? "es" : "", fmt::join(absent, ", "));
  }
  std::vector<std::string> missing_in_val;
  if (!val_dir.empty()) {
    Skipped listed_again;
    if (classes.empty()) classes = class_folders(val_dir, listed_again);
    val = list_split(val_dir, classes, skipped, &missing_in_val);
  } else {
    std::tie(train, val) = split_off(train, o.val_split, o.seed);
  }
  train = limited(train, o.limit_train, o.seed, 0x7472616e00ULL);
  val = limited(val, o.limit_test, o.seed, 0x7465737400ULL);
  PW_CHECK(!val.files.empty(), "[folder] the validation split of {} is empty", root.string());

  const std::string val_what =
      val_dir.empty() ? fmt::format("val (--val-split {} of {})", o.val_split, train_dir.string())
                      : fmt::format("val ({})", val_dir.string());
  out.notes.push_back(fmt::format("image folder {}: {} classes ({})", root.string(), classes.size(),
                                  fmt::join(classes, ", ")));
  std::map<int, std::int64_t> converted;  // channels in the file -> images
  std::int64_t budget = o.memory_budget_bytes;
  if (o.read_train) {
    ChannelSums sums;
    budget -= read_split(train, fmt::format("train ({})", train_dir.string()), budget, o, out.train,
                         &sums, converted, out.notes);
    if (o.compute_normalization && sums.pixels > 0) {
      out.train.normalization.mean.assign(3, 0.0);
      out.train.normalization.std.assign(3, 1.0);
      const double n = static_cast<double>(sums.pixels);
      for (int c = 0; c < 3; ++c) {
        const double mean = static_cast<double>(sums.sum[c]) / n / 255.0;
        const double var = static_cast<double>(sums.sum_sq[c]) / n / (255.0 * 255.0) - mean * mean;
        const double std = std::sqrt(std::max(var, 0.0));
        out.train.normalization.mean[static_cast<std::size_t>(c)] = mean;
        // A channel that never varies keeps std 1 rather than dividing by zero.
        out.train.normalization.std[static_cast<std::size_t>(c)] = std > 1e-6 ? std : 1.0;
      }
      out.notes.push_back(fmt::format(
          "normalisation over the training images: mean ({:.4f}, {:.4f}, {:.4f}), std ({:.4f}, "
          "{:.4f}, {:.4f})",
          out.train.normalization.mean[0], out.train.normalization.mean[1],
          out.train.normalization.mean[2], out.train.normalization.std[0],
          out.train.normalization.std[1], out.train.normalization.std[2]));
    }
  }
  read_split(val, val_what, budget, o, out.test, nullptr, converted, out.notes);
  for (Dataset* d : {&out.train, &out.test}) d->class_names = classes;

  if (!missing_in_val.empty())
    out.notes.push_back(fmt::format("warning: {} has no images of {} class{}: {}", val_dir.string(),
                                    missing_in_val.size(), missing_in_val.size() > 1 ? "es" : "",
                                    fmt::join(missing_in_val, ", ")));
  if (!converted.empty()) {
    static const std::map<int, std::string> kinds{{1, "grey"}, {2, "grey+alpha"}, {4, "RGBA"}};
    std::vector<std::string> parts;
    for (const auto& [channels, count] : converted) {
      const auto it = kinds.find(channels);
      parts.push_back(fmt::format(
          "{} {}", count, it != kinds.end() ? it->second : fmt::format("{}-channel", channels)));
    }
    out.notes.push_back(
        fmt::format("warning: converted {} images to RGB (grey replicated, alpha "
                    "dropped)",
                    fmt::join(parts, ", ")));
  }
  if (skipped.count > 0)
    out.notes.push_back(fmt::format(
        "warning: skipped {} files that are not images by their extension (e.g. {}); images are "
        "{}",
        skipped.count, skipped.example.string(), list_extensions()));
  return out;
}

}  // namespace pw::data
