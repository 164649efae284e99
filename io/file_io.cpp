#include "io/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

}  // namespace

void FileSink::write(const void* data, std::size_t n) {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
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
  writer(sink);
  sink.flush();
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
