#include "data/cifar10.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/interrupt.h"

namespace pw::data {

namespace fs = std::filesystem;

std::vector<std::string> default_class_names() {
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

std::vector<std::string> split_files(Split split) {
  const CifarLayout& l = cifar10_layout();
  return split == Split::Test ? l.test_files : l.train_files;
}

const CifarLayout& cifar10_layout() {
  static const CifarLayout layout{
      .name = "cifar10",
      .title = "CIFAR-10",
      .archive = "cifar-10-binary.tar.gz",
      .folder = "cifar-10-batches-bin",
      .train_files = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                      "data_batch_4.bin", "data_batch_5.bin"},
      .test_files = {"test_batch.bin"},
      .label_bytes = 1,
      .label_byte = 0,
      .num_classes = kNumClasses,
      .meta_file = "batches.meta.txt",
      .default_names = default_class_names(),
      .normalization = {},
      .env_var = "CIFAR10_DIR",
      .download_script = "get-cifar10.sh",
  };
  return layout;
}

const CifarLayout& cifar100_layout(CifarLabels labels) {
  static const auto make = [](bool fine) {
    // The names of the official meta files, in label order (fine names sorted alphabetically).
    std::vector<std::string> fine_names{
        "apple",       "aquarium_fish", "baby",      "bear",       "beaver",       "bed",
        "bee",         "beetle",        "bicycle",   "bottle",     "bowl",         "boy",
        "bridge",      "bus",           "butterfly", "camel",      "can",          "castle",
        "caterpillar", "cattle",        "chair",     "chimpanzee", "clock",        "cloud",
        "cockroach",   "couch",         "crab",      "crocodile",  "cup",          "dinosaur",
        "dolphin",     "elephant",      "flatfish",  "forest",     "fox",          "girl",
        "hamster",     "house",         "kangaroo",  "keyboard",   "lamp",         "lawn_mower",
        "leopard",     "lion",          "lizard",    "lobster",    "man",          "maple_tree",
        "motorcycle",  "mountain",      "mouse",     "mushroom",   "oak_tree",     "orange",
        "orchid",      "otter",         "palm_tree", "pear",       "pickup_truck", "pine_tree",
        "plain",       "plate",         "poppy",     "porcupine",  "possum",       "rabbit",
        "raccoon",     "ray",           "road",      "rocket",     "rose",         "sea",
        "seal",        "shark",         "shrew",     "skunk",      "skyscraper",   "snail",
        "snake",       "spider",        "squirrel",  "streetcar",  "sunflower",    "sweet_pepper",
        "table",       "tank",          "telephone", "television", "tiger",        "tractor",
        "train",       "trout",         "tulip",     "turtle",     "wardrobe",     "whale",
        "willow_tree", "wolf",          "woman",     "worm"};
    std::vector<std::string> coarse_names{"aquatic_mammals",
                                          "fish",
                                          "flowers",
                                          "food_containers",
                                          "fruit_and_vegetables",
                                          "household_electrical_devices",
                                          "household_furniture",
                                          "insects",
                                          "large_carnivores",
                                          "large_man-made_outdoor_things",
                                          "large_natural_outdoor_scenes",
                                          "large_omnivores_and_herbivores",
                                          "medium_mammals",
                                          "non-insect_invertebrates",
                                          "people",
                                          "reptiles",
                                          "small_mammals",
                                          "trees",
                                          "vehicles_1",
                                          "vehicles_2"};
    return CifarLayout{
        .name = "cifar100",
        .title = "CIFAR-100",
        .archive = "cifar-100-binary.tar.gz",
        .folder = "cifar-100-binary",
        .train_files = {"train.bin"},
        .test_files = {"test.bin"},
        .label_bytes = 2,
        .label_byte = fine ? 1 : 0,
        .num_classes = fine ? 100 : 20,
        .meta_file = fine ? "fine_label_names.txt" : "coarse_label_names.txt",
        .default_names = fine ? fine_names : coarse_names,
        // The usual values, computed over the 50,000 training images.
        .normalization = {{0.5071, 0.4865, 0.4409}, {0.2673, 0.2564, 0.2762}},
        .env_var = "CIFAR100_DIR",
        .download_script = "get-cifar100.sh",
    };
  };
  static const CifarLayout fine = make(true), coarse = make(false);
  return labels == CifarLabels::Fine ? fine : coarse;
}

namespace {

// Text entries (the label-name files, long names, pax headers) are read whole; larger ones are
// not what the format holds.
constexpr std::uint64_t kMaxTextEntry = 1 << 20;
// Entry sizes in a tar header above this are corrupt (and would overflow the padding).
constexpr std::uint64_t kMaxEntrySize = std::uint64_t{1} << 50;

// Fills dst with exactly n bytes or throws.
using ReadFn = std::function<void(std::uint8_t* dst, std::size_t n)>;

// Grows `v` to hold `size` elements when `claimed` were announced: at most twice what has
// arrived, never more than announced, so that a size read from an archive header costs memory
// only as its data actually comes (and a 6 GB claim in a 421-byte file costs nothing).
template <typename T>
void grow_for(std::vector<T>& v, std::size_t size, std::size_t claimed) {
  if (size > v.capacity()) v.reserve(std::min(claimed, std::max(size, 2 * v.capacity())));
  v.resize(size);
}

// Appends up to `max_records` (all when negative) records of a batch file of `size` bytes
// to `out`, validating the size and every label. Returns the bytes consumed.
std::uint64_t parse_records(const CifarLayout& layout, const ReadFn& read, std::uint64_t size,
                            const std::string& name, std::int64_t max_records, Dataset& out) {
  const std::int64_t record_bytes = layout.record_bytes();
  PW_CHECK(size > 0, "[{}] {} is empty", layout.name, name);
  PW_CHECK(size % record_bytes == 0,
           "[{}] {} has {} bytes, which is not a multiple of the {}-byte record", layout.name, name,
           size, record_bytes);
  std::int64_t records = static_cast<std::int64_t>(size / record_bytes);
  if (max_records >= 0) records = std::min(records, max_records);
  const std::int64_t first = out.size();
  const auto claimed = static_cast<std::size_t>(first + records);
  // Records are read in chunks and split into label and image: the file's image bytes are
  // already CHW, so each image is one memcpy.
  constexpr std::int64_t kChunkRecords = 1024;
  std::vector<std::uint8_t> chunk(
      static_cast<std::size_t>(std::min(kChunkRecords, records) * record_bytes));
  for (std::int64_t done = 0; done < records;) {
    check_interrupt(layout.name.c_str());
    const std::int64_t n = std::min(kChunkRecords, records - done);
    read(chunk.data(), static_cast<std::size_t>(n * record_bytes));
    const auto have = static_cast<std::size_t>(first + done + n);
    grow_for(out.labels, have, claimed);
    grow_for(out.images, have * kImageBytes, claimed * kImageBytes);
    for (std::int64_t r = 0; r < n; ++r) {
      const std::uint8_t* rec = chunk.data() + r * record_bytes;
      // Every label byte is checked, the unused coarse or fine one too: a bad one means a
      // corrupt or misaligned file.
      for (int b = 0; b < layout.label_bytes; ++b) {
        const int classes = b == layout.label_byte   ? layout.num_classes
                            : layout.label_byte == 1 ? 20
                                                     : 100;  // CIFAR-100's other label
        PW_CHECK(rec[b] < classes, "[{}] {}: record {} has {}label {}, expected 0..{}", layout.name,
                 name, done + r, layout.label_bytes == 1 ? "" : (b == 0 ? "coarse " : "fine "),
                 static_cast<int>(rec[b]), classes - 1);
      }
      out.labels[static_cast<std::size_t>(first + done + r)] = rec[layout.label_byte];
      std::memcpy(out.images.data() + (first + done + r) * kImageBytes, rec + layout.label_bytes,
                  kImageBytes);
    }
    done += n;
  }
  return static_cast<std::uint64_t>(records) * record_bytes;
}

// Class names from the meta file (one per line); the official names when it is unusable.
std::vector<std::string> parse_meta(const CifarLayout& layout, const std::string& text) {
  std::vector<std::string> names;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    line.erase(line.find_last_not_of(" \t\r") + 1);
    line.erase(0, line.find_first_not_of(" \t"));
    if (!line.empty()) names.push_back(line);
  }
  return names.size() == static_cast<std::size_t>(layout.num_classes) ? names
                                                                      : layout.default_names;
}

void append_limited(Dataset& out, const Dataset& part, std::int64_t limit) {
  std::int64_t n = part.size();
  if (limit >= 0) n = std::min(n, limit - out.size());
  if (n <= 0) return;
  out.labels.insert(out.labels.end(), part.labels.begin(), part.labels.begin() + n);
  out.images.insert(out.images.end(), part.images.begin(), part.images.begin() + n * kImageBytes);
}

// Assembles one split from batch files that may arrive in any order (archive members).
struct SplitBuilder {
  SplitBuilder(const CifarLayout& lay, Split split, std::int64_t l)
      : layout(lay), files(split == Split::Train ? lay.train_files : lay.test_files), limit(l) {
    out.normalization = layout.normalization;
  }
  const CifarLayout& layout;
  std::vector<std::string> files;
  std::int64_t limit = -1;
  Dataset out;
  std::size_t next = 0;                  // the next file to append, in split order
  std::map<std::size_t, Dataset> stash;  // files that arrived before their predecessors

  bool done() const { return next == files.size() || (limit >= 0 && out.size() >= limit); }
  std::int64_t remaining() const { return limit < 0 ? -1 : limit - out.size(); }
  std::optional<std::size_t> wants(const std::string& name) const {
    if (done()) return std::nullopt;
    auto it = std::find(files.begin(), files.end(), name);
    if (it == files.end()) return std::nullopt;
    const auto k = static_cast<std::size_t>(it - files.begin());
    if (k < next || stash.count(k)) return std::nullopt;
    return k;
  }
  // Parses file k from `read`; returns the bytes consumed.
  std::uint64_t take(std::size_t k, const ReadFn& read, std::uint64_t size,
                     const std::string& name) {
    if (k != next) return parse_records(layout, read, size, name, remaining(), stash[k]);
    const std::uint64_t used = parse_records(layout, read, size, name, remaining(), out);
    ++next;
    for (auto it = stash.find(next); it != stash.end() && !done(); it = stash.find(next)) {
      append_limited(out, it->second, limit);
      stash.erase(it);
      ++next;
    }
    return used;
  }
};

// ---- extracted folder ----

void read_folder(const CifarLayout& layout, const fs::path& dir,
                 std::vector<SplitBuilder*> builders) {
  for (SplitBuilder* b : builders) {
    while (!b->done()) {
      const fs::path path = dir / b->files[b->next];
      PW_CHECK(fs::is_regular_file(path), "[{}] missing batch file {}", layout.name, path.string());
      std::ifstream in(path, std::ios::binary);
      PW_CHECK(in, "[{}] cannot open {}", layout.name, path.string());
      const std::string name = path.string();
      ReadFn read = [&](std::uint8_t* dst, std::size_t n) {
        in.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
        PW_CHECK(static_cast<std::size_t>(in.gcount()) == n, "[{}] {}: read error", layout.name,
                 name);
      };
      b->take(b->next, read, fs::file_size(path), name);
    }
  }
  std::string meta;
  std::error_code ec;
  const auto meta_size = fs::file_size(dir / layout.meta_file, ec);
  if (std::ifstream in(dir / layout.meta_file); in && !ec && meta_size < kMaxTextEntry) {
    std::ostringstream s;
    s << in.rdbuf();
    meta = s.str();
  }
  for (SplitBuilder* b : builders) b->out.class_names = parse_meta(layout, meta);
}

// ---- .tar.gz archive: zlib's gz* API (reads plain .tar too) and a minimal ustar parser ----

class GzReader {
 public:
  GzReader(const fs::path& path, std::string prefix)
      : name_(path.string()), prefix_(std::move(prefix)) {
    file_ = gzopen(name_.c_str(), "rb");
    PW_CHECK(file_ != nullptr, "[{}] cannot open archive {}", prefix_, name_);
    gzbuffer(file_, 1 << 20);
  }
  ~GzReader() { gzclose(file_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes; fewer only at the end of the data.
  std::size_t read_some(std::uint8_t* dst, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      const unsigned ask = static_cast<unsigned>(std::min<std::size_t>(n - got, INT_MAX / 2));
      const int r = gzread(file_, dst + got, ask);
      if (r < 0) {
        int err = 0;
        pw::fail("[{}] {}: corrupt archive ({})", prefix_, name_, gzerror(file_, &err));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }
  // Reads exactly n bytes of `what`, or reports a truncated archive.
  void read_exact(std::uint8_t* dst, std::size_t n, const std::string& what) {
    if (read_some(dst, n) == n) return;
    int err = 0;
    const char* msg = gzerror(file_, &err);
    pw::fail("[{}] {}: truncated archive, data ends inside {}{}", prefix_, name_, what,
             err != Z_OK ? fmt::format(" ({})", msg) : std::string());
  }
  void skip(std::uint64_t n, const std::string& what) {
    std::vector<std::uint8_t> scratch(std::min<std::uint64_t>(n, 1 << 20));
    while (n > 0) {
      check_interrupt(prefix_.c_str());
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, scratch.size()));
      read_exact(scratch.data(), k, what);
      n -= k;
    }
  }
  // Reads what is left of the stream, so that zlib checks the gzip trailer (length and CRC):
  // an archive cut short after the entries in use is then reported too.
  void drain() {
    std::vector<std::uint8_t> scratch(1 << 16);
    while (read_some(scratch.data(), scratch.size()) > 0) check_interrupt(prefix_.c_str());
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string prefix_;  // of messages: the release's name
  gzFile file_ = nullptr;
};

// A numeric tar header field: octal ASCII, or base-256 when the top bit is set (GNU).
std::uint64_t tar_number(const std::uint8_t* field, std::size_t len, const std::string& prefix,
                         const std::string& archive) {
  std::uint64_t v = 0;
  const auto too_large = [&] {
    pw::fail("[{}] {}: corrupt tar header (numeric field out of range)", prefix, archive);
  };
  if (field[0] & 0x80) {
    for (std::size_t i = 1; i < len; ++i) {
      if (v >> 56) too_large();
      v = (v << 8) | field[i];
    }
    return v;
  }
  std::size_t i = 0;
  while (i < len && field[i] == ' ') ++i;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (v >> 60) too_large();
    v = v * 8 + (field[i] - '0');
  }
  PW_CHECK(i == len || field[i] == ' ' || field[i] == '\0',
           "[{}] {}: corrupt tar header (bad numeric field)", prefix, archive);
  return v;
}

std::string tar_string(const std::uint8_t* field, std::size_t len) {
  const auto* p = reinterpret_cast<const char*>(field);
  return std::string(p, strnlen(p, len));
}

std::string basename_of(const std::string& path) {
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// The "path" record of a pax extended header ("<len> path=<value>\n" records, <len> counting
// the whole record). Each length is checked against what is left before it is used, so that
// a huge one can neither wrap `pos + len` nor send the loop backwards.
std::optional<std::string> pax_path(const std::string& text, const std::string& prefix,
                                    const std::string& archive) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t len = 0, digits = pos;
    for (; digits < text.size() && text[digits] >= '0' && text[digits] <= '9'; ++digits) {
      len = len * 10 + static_cast<std::size_t>(text[digits] - '0');
      PW_CHECK(len <= text.size() - pos,
               "[{}] {}: corrupt pax header (a record is longer than the header)", prefix, archive);
    }
    // At least "<len> k=\n": the digits, a space, a key, '=' and the newline.
    PW_CHECK(digits > pos && digits < text.size() && text[digits] == ' ' &&
                 len >= digits - pos + 4 && text[pos + len - 1] == '\n',
             "[{}] {}: corrupt pax header (bad record at byte {})", prefix, archive, pos);
    const std::string record = text.substr(digits + 1, pos + len - digits - 2);  // drop '\n'
    if (record.rfind("path=", 0) == 0) return record.substr(5);
    pos += len;
  }
  return std::nullopt;
}

void read_archive(const CifarLayout& layout, const fs::path& path,
                  std::vector<SplitBuilder*> builders) {
  GzReader gz(path, layout.name);
  const std::string& archive = gz.name();
  std::string meta;
  std::optional<std::string> long_name;  // from a GNU 'L' or pax 'x' entry, for the next one
  std::array<std::uint8_t, 512> header{};
  std::uint64_t offset = 0;
  bool ended = false;
  const std::string& prefix = layout.name;
  // Reading goes on to the end of the archive even when the splits are complete (or limited):
  // the label-name file is found wherever it is (60 bytes after test_batch.bin in the official
  // CIFAR-10 archive), and a damaged or truncated archive is reported whatever the limits.
  for (;;) {
    const std::size_t got = gz.read_some(header.data(), header.size());
    if (got == 0) break;  // no end-of-archive marker: judged below by what is missing
    PW_CHECK(got == header.size(), "[{}] {}: truncated archive, data ends inside a header", prefix,
             archive);
    if (std::all_of(header.begin(), header.end(), [](std::uint8_t c) { return c == 0; })) {
      ended = true;
      break;
    }
    // The checksum (header bytes summed with its own field read as spaces) catches corruption
    // that zlib cannot see, e.g. a plain .tar or a damaged header.
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < header.size(); ++i) sum += (i >= 148 && i < 156) ? ' ' : header[i];
    PW_CHECK(sum == tar_number(header.data() + 148, 8, prefix, archive),
             "[{}] {}: corrupt archive (bad tar header checksum at byte {})", prefix, archive,
             offset);
    const std::uint64_t size = tar_number(header.data() + 124, 12, prefix, archive);
    PW_CHECK(size <= kMaxEntrySize, "[{}] {}: corrupt tar header (entry of {} bytes)", prefix,
             archive, size);
    const char type = static_cast<char>(header[156]);
    std::string name = tar_string(header.data(), 100);
    if (std::memcmp(header.data() + 257, "ustar", 5) == 0) {
      const std::string prefix = tar_string(header.data() + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    if (long_name) name = *std::exchange(long_name, std::nullopt);
    offset += header.size();
    const std::uint64_t padded = (size + 511) / 512 * 512;
    const std::string what = name.empty() ? "an entry" : name;

    std::uint64_t used = 0;
    const bool regular = type == '0' || type == '\0';
    if (type == 'L' || type == 'x' || (regular && basename_of(name) == layout.meta_file)) {
      PW_CHECK(size < kMaxTextEntry, "[{}] {}: implausible {}-byte entry {}", prefix, archive, size,
               what);
      std::string text(size, '\0');
      gz.read_exact(reinterpret_cast<std::uint8_t*>(text.data()), size, what);
      used = size;
      if (type == 'L')
        long_name = tar_string(reinterpret_cast<const std::uint8_t*>(text.data()), size);
      else if (type == 'x')
        long_name = pax_path(text, prefix, archive);
      else
        meta = text;
    } else if (regular) {
      const std::string base = basename_of(name);
      for (SplitBuilder* b : builders) {
        if (auto k = b->wants(base)) {
          ReadFn read = [&](std::uint8_t* dst, std::size_t n) { gz.read_exact(dst, n, what); };
          used = b->take(*k, read, size, fmt::format("{} in {}", name, archive));
          break;
        }
      }
    }
    gz.skip(padded - used, what);
    offset += padded;
  }
  for (SplitBuilder* b : builders) {
    PW_CHECK(ended || b->done(), "[{}] {}: truncated archive, it ends before {}", prefix, archive,
             b->files[b->next]);
  }
  PW_CHECK(ended, "[{}] {}: truncated archive, it ends without the end-of-archive marker", prefix,
           archive);
  gz.drain();
  for (SplitBuilder* b : builders) {
    PW_CHECK(b->done(), "[{}] {}: missing batch file {}", prefix, archive, b->files[b->next]);
  }
  for (SplitBuilder* b : builders) b->out.class_names = parse_meta(layout, meta);
}

bool has_bins(const CifarLayout& layout, const fs::path& dir) {
  return fs::is_regular_file(dir / layout.train_files.front()) ||
         fs::is_regular_file(dir / layout.test_files.front());
}

void read_source(const CifarLayout& layout, const fs::path& source,
                 std::vector<SplitBuilder*> builders) {
  const auto resolved = resolve_cifar_source(source, layout);
  PW_CHECK(resolved.has_value(), "[{}] {} holds neither the {} .bin files, a {}/ folder, nor {}",
           layout.name, source.string(), layout.title, layout.folder, layout.archive);
  if (fs::is_directory(*resolved)) {
    read_folder(layout, *resolved, std::move(builders));
  } else {
    read_archive(layout, *resolved, std::move(builders));
  }
}

}  // namespace

std::optional<fs::path> resolve_cifar_source(const fs::path& source, const CifarLayout& layout) {
  std::error_code ec;
  if (fs::is_regular_file(source, ec)) return source;
  if (!fs::is_directory(source, ec)) return std::nullopt;
  if (has_bins(layout, source)) return source;
  if (has_bins(layout, source / layout.folder)) return source / layout.folder;
  if (fs::is_regular_file(source / layout.archive, ec)) return source / layout.archive;
  return std::nullopt;
}

std::optional<fs::path> resolve_cifar10_source(const fs::path& source) {
  return resolve_cifar_source(source, cifar10_layout());
}

Dataset read_cifar(const fs::path& source, const CifarLayout& layout, Split split,
                   std::int64_t limit) {
  SplitBuilder b(layout, split, limit);
  read_source(layout, source, {&b});
  return std::move(b.out);
}

Splits read_cifar(const fs::path& source, const CifarLayout& layout, std::int64_t train_limit,
                  std::int64_t test_limit) {
  SplitBuilder train(layout, Split::Train, train_limit);
  SplitBuilder test(layout, Split::Test, test_limit);
  read_source(layout, source, {&train, &test});
  return {std::move(train.out), std::move(test.out), {}};
}

Dataset read_cifar10(const fs::path& source, Split split, std::int64_t limit) {
  return read_cifar(source, cifar10_layout(), split, limit);
}

Cifar10 read_cifar10(const fs::path& source, std::int64_t train_limit, std::int64_t test_limit) {
  return read_cifar(source, cifar10_layout(), train_limit, test_limit);
}

}  // namespace pw::data
