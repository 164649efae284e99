// Whole-file reads and crash-safe whole-file writes. Everything that saves (checkpoints,
// metrics, weights) goes through write_file_atomic, so that a crash or an exception midway
// leaves the previous file in place rather than a truncated one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pw {

// The buffered output handed to a write_file_atomic callback.
class FileSink {
 public:
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  // Appends n bytes; throws pw::Error naming the file on a failed write.
  void write(const void* data, std::size_t n);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Writes out what is still buffered.
  void flush();
  // Bytes accepted so far (buffered or written).
  std::uint64_t bytes_written() const { return total_; }

 private:
  void write_fd(const std::uint8_t* data, std::size_t n);
  friend void write_file_atomic(const std::string& path,
                                const std::function<void(FileSink&)>& writer);

  bool kill_in_write_ = false;  // PATCHWORK_KILL_IN_WRITE chose this write
  int fd_;
  std::string path_;
  std::vector<std::uint8_t> buffer_;
  std::uint64_t total_ = 0;
};

// Writes `path` atomically: the callback fills `path.tmp.<pid>`, which is flushed, fsynced and
// renamed over `path`, then the directory is fsynced. On any error (including one thrown by
// the callback) the temporary file is removed and `path` is untouched.
//
// For crash tests, the environment variable PATCHWORK_KILL_IN_WRITE="<n>:<bytes>[:<suffix>]"
// makes the process SIGKILL itself inside its n-th atomic write (counting from 1; only writes
// of paths ending with <suffix> count when it is given), once <bytes> bytes of that file are
// written, or after the whole file and before its rename when the file is shorter: a kill at a
// known moment of a checkpoint write.
void write_file_atomic(const std::string& path, const std::function<void(FileSink&)>& writer);
// write_file_atomic with fixed contents.
void write_file_atomic(const std::string& path, std::span<const std::uint8_t> bytes);
void write_file_atomic(const std::string& path, std::string_view text);

// Removes the temporary files `<name>.tmp.<pid>` in `dir` that write_file_atomic left behind
// when its process was killed (those of a process still running are kept); returns their paths.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

// The whole file as bytes; throws pw::Error naming the file and the reason.
std::vector<std::uint8_t> read_file(const std::string& path);
// The whole file as a string (for text formats such as JSON).
std::string read_text_file(const std::string& path);

}  // namespace pw
