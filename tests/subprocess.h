// Child processes for end-to-end tests that run programs (`vit`, `mpirun`): started in a process
// group of their own with stdout and stderr in one log file, waited for with a deadline, and
// killed, group and all, when they overrun it or the test ends.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace pw::testing {

class Child {
 public:
  // Starts argv[0] (a path) with `argv`; its output goes to `log`.
  Child(const std::vector<std::string>& argv, const std::filesystem::path& log) : log_(log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    start_ = std::chrono::steady_clock::now();
    if (posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  ~Child() {
    if (running()) {
      ::kill(-pid_, SIGKILL);
      ::kill(-pid_, SIGCONT);
      wait_for(10);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }

  // The exit code (128 + signal when killed by one), or nullopt if still running after
  // `seconds`.
  std::optional<int> wait_for(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!status_) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        end_ = std::chrono::steady_clock::now();
        break;
      }
      if (r < 0) {
        status_ = -1;
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return status_;
  }
  // Waits up to `seconds`, then kills the group; the exit code (-9 when it had to be killed).
  int finish(double seconds) {
    if (auto code = wait_for(seconds)) return *code;
    ::kill(-pid_, SIGKILL);
    wait_for(10);
    return -9;
  }
  // Seconds from the start to the exit.
  double seconds() const { return std::chrono::duration<double>(end_ - start_).count(); }
  std::string output() const { return output_of(log_); }
  static std::string output_of(const std::filesystem::path& log) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::chrono::steady_clock::time_point start_, end_;
};

// How many times `needle` occurs in `text`.
inline int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Polls `ready` every 50 ms for up to `seconds`; whether it became true.
inline bool wait_until(const std::function<bool()>& ready, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ready();
}

// The pids of processes whose environment holds `var` and whose command line contains `marker`
// (e.g. the MPI rank variable and a run's unique folder name).
inline std::vector<pid_t> find_processes(const std::string& var, const std::string& marker) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto read = [&](const char* file) {
      std::ifstream in(entry.path() / file, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string s = ss.str();
      for (auto& c : s)
        if (c == '\0') c = '\n';
      return "\n" + s + "\n";
    };
    if (read("cmdline").find(marker) == std::string::npos) continue;
    if (read("environ").find("\n" + var + "\n") == std::string::npos) continue;
    out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

}  // namespace pw::testing
