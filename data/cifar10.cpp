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
  if (split == Split::Test) return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
          "data_batch_5.bin"};
}

namespace {

constexpr const char* kMetaFile = "batches.meta.txt";
// Text entries (batches.meta.txt, long names, pax headers) are read whole; larger ones are not
// what the format holds.
constexpr std::uint64_t kMaxTextEntry = 1 << 20;
// Entry sizes in a tar header above this are corrupt (and would overflow the padding).
constexpr std::uint64_t kMaxEntrySize = std::uint64_t{1} << 50;
constexpr const char* kArchiveName = "cifar-10-binary.tar.gz";
constexpr const char* kBinFolder = "cifar-10-batches-bin";

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
std::uint64_t parse_records(const ReadFn& read, std::uint64_t size, const std::string& name,
                            std::int64_t max_records, Dataset& out) {
  PW_CHECK(size > 0, "[cifar10] {} is empty", name);
  PW_CHECK(size % kRecordBytes == 0,
           "[cifar10] {} has {} bytes, which is not a multiple of the {}-byte record", name, size,
           kRecordBytes);
  std::int64_t records = static_cast<std::int64_t>(size / kRecordBytes);
  if (max_records >= 0) records = std::min(records, max_records);
  const std::int64_t first = out.size();
  const auto claimed = static_cast<std::size_t>(first + records);
  // Records are read in chunks and split into label and image: the file's image bytes are
  // already CHW, so each image is one memcpy.
  constexpr std::int64_t kChunkRecords = 1024;
  std::vector<std::uint8_t> chunk(
      static_cast<std::size_t>(std::min(kChunkRecords, records) * kRecordBytes));
  for (std::int64_t done = 0; done < records;) {
    check_interrupt("cifar10");
    const std::int64_t n = std::min(kChunkRecords, records - done);
    read(chunk.data(), static_cast<std::size_t>(n * kRecordBytes));
    const auto have = static_cast<std::size_t>(first + done + n);
    grow_for(out.labels, have, claimed);
    grow_for(out.images, have * kImageBytes, claimed * kImageBytes);
    for (std::int64_t r = 0; r < n; ++r) {
      const std::uint8_t* rec = chunk.data() + r * kRecordBytes;
      PW_CHECK(rec[0] < kNumClasses, "[cifar10] {}: record {} has label {}, expected 0..9", name,
               done + r, static_cast<int>(rec[0]));
      out.labels[static_cast<std::size_t>(first + done + r)] = rec[0];
      std::memcpy(out.images.data() + (first + done + r) * kImageBytes, rec + 1, kImageBytes);
    }
    done += n;
  }
  return static_cast<std::uint64_t>(records) * kRecordBytes;
}

// Class names from batches.meta.txt (one per line); the official names when it is unusable.
std::vector<std::string> parse_meta(const std::string& text) {
  std::vector<std::string> names;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    line.erase(line.find_last_not_of(" \t\r") + 1);
    line.erase(0, line.find_first_not_of(" \t"));
    if (!line.empty()) names.push_back(line);
  }
  return names.size() == kNumClasses ? names : default_class_names();
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
  SplitBuilder(std::vector<std::string> f, std::int64_t l) : files(std::move(f)), limit(l) {}
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
    if (k != next) return parse_records(read, size, name, remaining(), stash[k]);
    const std::uint64_t used = parse_records(read, size, name, remaining(), out);
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

void read_folder(const fs::path& dir, std::vector<SplitBuilder*> builders) {
  for (SplitBuilder* b : builders) {
    while (!b->done()) {
      const fs::path path = dir / b->files[b->next];
      PW_CHECK(fs::is_regular_file(path), "[cifar10] missing batch file {}", path.string());
      std::ifstream in(path, std::ios::binary);
      PW_CHECK(in, "[cifar10] cannot open {}", path.string());
      const std::string name = path.string();
      ReadFn read = [&](std::uint8_t* dst, std::size_t n) {
        in.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
        PW_CHECK(static_cast<std::size_t>(in.gcount()) == n, "[cifar10] {}: read error", name);
      };
      b->take(b->next, read, fs::file_size(path), name);
    }
  }
  std::string meta;
  std::error_code ec;
  const auto meta_size = fs::file_size(dir / kMetaFile, ec);
  if (std::ifstream in(dir / kMetaFile); in && !ec && meta_size < kMaxTextEntry) {
    std::ostringstream s;
    s << in.rdbuf();
    meta = s.str();
  }
  for (SplitBuilder* b : builders) b->out.class_names = parse_meta(meta);
}

// ---- .tar.gz archive: zlib's gz* API (reads plain .tar too) and a minimal ustar parser ----

class GzReader {
 public:
  explicit GzReader(const fs::path& path) : name_(path.string()) {
    file_ = gzopen(name_.c_str(), "rb");
    PW_CHECK(file_ != nullptr, "[cifar10] cannot open archive {}", name_);
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
        pw::fail("[cifar10] {}: corrupt archive ({})", name_, gzerror(file_, &err));
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
    pw::fail("[cifar10] {}: truncated archive, data ends inside {}{}", name_, what,
             err != Z_OK ? fmt::format(" ({})", msg) : std::string());
  }
  void skip(std::uint64_t n, const std::string& what) {
    std::vector<std::uint8_t> scratch(std::min<std::uint64_t>(n, 1 << 20));
    while (n > 0) {
      check_interrupt("cifar10");
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, scratch.size()));
      read_exact(scratch.data(), k, what);
      n -= k;
    }
  }
  // Reads what is left of the stream, so that zlib checks the gzip trailer (length and CRC):
  // an archive cut short after the entries in use is then reported too.
  void drain() {
    std::vector<std::uint8_t> scratch(1 << 16);
    while (read_some(scratch.data(), scratch.size()) > 0) check_interrupt("cifar10");
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  gzFile file_ = nullptr;
};

// A numeric tar header field: octal ASCII, or base-256 when the top bit is set (GNU).
std::uint64_t tar_number(const std::uint8_t* field, std::size_t len, const std::string& archive) {
  std::uint64_t v = 0;
  const auto too_large = [&] {
    pw::fail("[cifar10] {}: corrupt tar header (numeric field out of range)", archive);
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
           "[cifar10] {}: corrupt tar header (bad numeric field)", archive);
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
std::optional<std::string> pax_path(const std::string& text, const std::string& archive) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t len = 0, digits = pos;
    for (; digits < text.size() && text[digits] >= '0' && text[digits] <= '9'; ++digits) {
      len = len * 10 + static_cast<std::size_t>(text[digits] - '0');
      PW_CHECK(len <= text.size() - pos,
               "[cifar10] {}: corrupt pax header (a record is longer than the header)", archive);
    }
    // At least "<len> k=\n": the digits, a space, a key, '=' and the newline.
    PW_CHECK(digits > pos && digits < text.size() && text[digits] == ' ' &&
                 len >= digits - pos + 4 && text[pos + len - 1] == '\n',
             "[cifar10] {}: corrupt pax header (bad record at byte {})", archive, pos);
    const std::string record = text.substr(digits + 1, pos + len - digits - 2);  // drop '\n'
    if (record.rfind("path=", 0) == 0) return record.substr(5);
    pos += len;
  }
  return std::nullopt;
}

void read_archive(const fs::path& path, std::vector<SplitBuilder*> builders) {
  GzReader gz(path);
  const std::string& archive = gz.name();
  std::string meta;
  std::optional<std::string> long_name;  // from a GNU 'L' or pax 'x' entry, for the next one
  std::array<std::uint8_t, 512> header{};
  std::uint64_t offset = 0;
  bool ended = false;
  // Reading goes on to the end of the archive even when the splits are complete (or limited):
  // batches.meta.txt is found wherever it is (60 bytes after test_batch.bin in the official
  // archive), and a damaged or truncated archive is reported whatever the limits.
  for (;;) {
    const std::size_t got = gz.read_some(header.data(), header.size());
    if (got == 0) break;  // no end-of-archive marker: judged below by what is missing
    PW_CHECK(got == header.size(), "[cifar10] {}: truncated archive, data ends inside a header",
             archive);
    if (std::all_of(header.begin(), header.end(), [](std::uint8_t c) { return c == 0; })) {
      ended = true;
      break;
    }
    // The checksum (header bytes summed with its own field read as spaces) catches corruption
    // that zlib cannot see, e.g. a plain .tar or a damaged header.
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < header.size(); ++i) sum += (i >= 148 && i < 156) ? ' ' : header[i];
    PW_CHECK(sum == tar_number(header.data() + 148, 8, archive),
             "[cifar10] {}: corrupt archive (bad tar header checksum at byte {})", archive, offset);
    const std::uint64_t size = tar_number(header.data() + 124, 12, archive);
    PW_CHECK(size <= kMaxEntrySize, "[cifar10] {}: corrupt tar header (entry of {} bytes)",
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
    if (type == 'L' || type == 'x' || (regular && basename_of(name) == kMetaFile)) {
      PW_CHECK(size < kMaxTextEntry, "[cifar10] {}: implausible {}-byte entry {}", archive, size,
               what);
      std::string text(size, '\0');
      gz.read_exact(reinterpret_cast<std::uint8_t*>(text.data()), size, what);
      used = size;
      if (type == 'L')
        long_name = tar_string(reinterpret_cast<const std::uint8_t*>(text.data()), size);
      else if (type == 'x')
        long_name = pax_path(text, archive);
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
    PW_CHECK(ended || b->done(), "[cifar10] {}: truncated archive, it ends before {}", archive,
             b->files[b->next]);
  }
  PW_CHECK(ended, "[cifar10] {}: truncated archive, it ends without the end-of-archive marker",
           archive);
  gz.drain();
  for (SplitBuilder* b : builders) {
    PW_CHECK(b->done(), "[cifar10] {}: missing batch file {}", archive, b->files[b->next]);
  }
  for (SplitBuilder* b : builders) b->out.class_names = parse_meta(meta);
}

bool has_bins(const fs::path& dir) {
  return fs::is_regular_file(dir / "data_batch_1.bin") ||
         fs::is_regular_file(dir / "test_batch.bin");
}

void read_source(const fs::path& source, std::vector<SplitBuilder*> builders) {
  const auto resolved = resolve_cifar10_source(source);
  PW_CHECK(resolved.has_value(),
           "[cifar10] {} holds neither the CIFAR-10 .bin files, a {}/ folder, nor {}",
           source.string(), kBinFolder, kArchiveName);
  if (fs::is_directory(*resolved)) {
    read_folder(*resolved, std::move(builders));
  } else {
    read_archive(*resolved, std::move(builders));
  }
}

}  // namespace

std::optional<fs::path> resolve_cifar10_source(const fs::path& source) {
  std::error_code ec;
  if (fs::is_regular_file(source, ec)) return source;
  if (!fs::is_directory(source, ec)) return std::nullopt;
  if (has_bins(source)) return source;
  if (has_bins(source / kBinFolder)) return source / kBinFolder;
  if (fs::is_regular_file(source / kArchiveName, ec)) return source / kArchiveName;
  return std::nullopt;
}

Dataset read_cifar10(const fs::path& source, Split split, std::int64_t limit) {
  SplitBuilder b(split_files(split), limit);
  read_source(source, {&b});
  return std::move(b.out);
}

Cifar10 read_cifar10(const fs::path& source, std::int64_t train_limit, std::int64_t test_limit) {
  SplitBuilder train(split_files(Split::Train), train_limit);
  SplitBuilder test(split_files(Split::Test), test_limit);
  read_source(source, {&train, &test});
  return {std::move(train.out), std::move(test.out)};
}

}  // namespace pw::data
