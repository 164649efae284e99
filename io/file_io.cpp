#include "io/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace pw {
namespace {

constexpr std::size_t kSinkBufferSize = 1 << 16;

std::string errno_text(int err) {
  return std::strerror(err);
}

// Directory part of a path, for the fsync that makes the rename itself durable.
std::string parent_directory(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Closes the descriptor and removes the temporary file unless released: the cleanup for every
// error path of write_file_atomic, including exceptions thrown by the caller's writer.
class TempFileGuard {
 public:
  TempFileGuard(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  ~TempFileGuard() {
    if (fd_ >= 0) ::close(fd_);
    if (!released_) ::unlink(path_.c_str());
  }
  // Closes the descriptor, reporting a failure (close can surface delayed write errors).
  void close() {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0)
      fail("[write_file_atomic] cannot close '{}': {}", path_, errno_text(errno));
  }
  void release() { released_ = true; }

 private:
  int fd_;
  std::string path_;
  bool released_ = false;
};

void fsync_directory(const std::string& dir, const std::string& path) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    fail("[write_file_atomic] wrote '{}' but cannot open its directory '{}' to sync it: {}", path,
         dir, errno_text(errno));
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    fail("[write_file_atomic] wrote '{}' but cannot sync its directory '{}': {}", path, dir,
         errno_text(err));
  }
}

// PATCHWORK_KILL_IN_WRITE (see file_io.h): which write (of the files whose name ends with
// `suffix`, when one is given), and after how many bytes.
struct KillPoint {
  std::int64_t write = -1;
  std::uint64_t bytes = 0;
  std::string suffix;
};

const KillPoint& kill_point() {
  static const KillPoint point = [] {
    KillPoint k;
    if (const char* env = std::getenv("PATCHWORK_KILL_IN_WRITE")) {
      unsigned long long n = 0, b = 0;
      int used = 0;
      if (std::sscanf(env, "%llu:%llu%n", &n, &b, &used) == 2) {
        k = {static_cast<std::int64_t>(n), b, ""};
        if (env[used] == ':') k.suffix = env + used + 1;
      }
    }
    return k;
  }();
  return point;
}

std::atomic<std::int64_t> atomic_writes{0};

// Whether this write is the one PATCHWORK_KILL_IN_WRITE chose.
bool kill_in_this_write(const std::string& path) {
  const KillPoint& k = kill_point();
  if (k.write < 0) return false;
  const bool counted = path.size() >= k.suffix.size() &&
                       path.compare(path.size() - k.suffix.size(), k.suffix.size(), k.suffix) == 0;
  return counted && ++atomic_writes == k.write;
}

}  // namespace

void FileSink::write(const void* data, std::size_t n) {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  if (kill_in_write_ && total_ + n >= kill_point().bytes) {
    flush();  // what came before, then the head of this piece: the file holds exactly `bytes`
    write_fd(bytes, static_cast<std::size_t>(kill_point().bytes - total_));
    ::raise(SIGKILL);
  }
  total_ += n;
  if (buffer_.size() + n > kSinkBufferSize) {
    flush();
    // Large pieces (tensor data) go straight to the file rather than through the buffer.
    if (n >= kSinkBufferSize) {
      write_fd(bytes, n);
      return;
    }
  }
  buffer_.insert(buffer_.end(), bytes, bytes + n);
}

void FileSink::flush() {
  write_fd(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void FileSink::write_fd(const std::uint8_t* data, std::size_t n) {
  while (n > 0) {
    ssize_t written = ::write(fd_, data, n);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("[write_file_atomic] cannot write '{}': {}", path_, errno_text(errno));
    }
    data += written;
    n -= static_cast<std::size_t>(written);
  }
}

void write_file_atomic(const std::string& path, const std::function<void(FileSink&)>& writer) {
  PW_CHECK(!path.empty(), "[write_file_atomic] empty path");
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    fail("[write_file_atomic] cannot create '{}' (temporary file for '{}'): {}", tmp, path,
         errno_text(errno));
  }
  TempFileGuard guard(fd, tmp);
  FileSink sink(fd, tmp);
  sink.kill_in_write_ = kill_in_this_write(path);
  writer(sink);
  sink.flush();
  if (sink.kill_in_write_) ::raise(SIGKILL);  // the whole file written, not yet renamed
  if (::fsync(fd) != 0) fail("[write_file_atomic] cannot sync '{}': {}", tmp, errno_text(errno));
  guard.close();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    fail("[write_file_atomic] cannot rename '{}' to '{}': {}", tmp, path, errno_text(errno));
  }
  guard.release();
  fsync_directory(parent_directory(path), path);
}

void write_file_atomic(const std::string& path, std::span<const std::uint8_t> bytes) {
  write_file_atomic(path, [&](FileSink& sink) { sink.write(bytes.data(), bytes.size()); });
}

void write_file_atomic(const std::string& path, std::string_view text) {
  write_file_atomic(path, [&](FileSink& sink) { sink.write(text); });
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const auto mark = name.rfind(".tmp.");
    if (mark == std::string::npos || mark + 5 == name.size() || name.size() - mark - 5 > 9 ||
        name.find_first_not_of("0123456789", mark + 5) != std::string::npos ||
        !entry.is_regular_file(ec))
      continue;
    // A process that is still running may be writing it: kill(pid, 0) fails with ESRCH only
    // when there is no such process.
    const auto pid = static_cast<pid_t>(std::strtol(name.c_str() + mark + 5, nullptr, 10));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (std::filesystem::remove(entry.path(), ec)) removed.push_back(entry.path().string());
  }
  return removed;
}

namespace {

template <typename Container>
Container read_whole_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("[read_file] cannot open '{}': {}", path, errno_text(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("[read_file] cannot stat '{}': {}", path, errno_text(errno));
  if (S_ISDIR(st.st_mode)) fail("[read_file] cannot read '{}': it is a directory", path);
  Container out;
  // The size is a hint only: the file may change while we read, and /proc files report 0.
  out.resize(static_cast<std::size_t>(st.st_size));
  std::size_t used = 0;
  char probe[4096];
  for (;;) {
    // Once the expected size is read, probe into a small buffer so that a file of exactly
    // that size needs no reallocation; only a file that grew is appended to.
    const bool full = used == out.size();
    char* dst = full ? probe : reinterpret_cast<char*>(out.data()) + used;
    ssize_t got = ::read(fd, dst, full ? sizeof(probe) : out.size() - used);
    if (got < 0) {
      if (errno == EINTR) continue;
      fail("[read_file] cannot read '{}': {}", path, errno_text(errno));
    }
    if (got == 0) break;
    if (full) out.insert(out.end(), probe, probe + got);
    used += static_cast<std::size_t>(got);
  }
  out.resize(used);
  return out;
}

}  // namespace

std::vector<std::uint8_t> read_file(const std::string& path) {
  return read_whole_file<std::vector<std::uint8_t>>(path);
}

std::string read_text_file(const std::string& path) {
  return read_whole_file<std::string>(path);
}

}  // namespace pw
