// Runs the `vit` program as a child process, as a user would: its exit code (or the signal that
// ended it), stdout and stderr, and its peak memory (ru_maxrss). Tests of hostile inputs check
// that a crafted file ends in a one-line error and an exit code, within a memory bound; the kill
// and signal tests send signals while it runs. A child that outlives its time limit is killed
// and reported (a hang is a failure, not a stuck suite).
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace pw::testing {

#ifndef PATCHWORK_VIT_PATH
#error "PATCHWORK_VIT_PATH (the path of vit) is defined by CMakeLists.txt"
#endif

// Peak memory the `vit` child may use when reading a hostile file: a little more than the program
// needs to start (OpenBLAS, oneDNN), far below what an unchecked size would take. The sanitizers
// add their shadow memory and quarantine.
// And the seconds it may take to refuse one: a bound that tells a hang (or a reader working
// through gigabytes it was told about) from a refusal, not a measurement of speed.
#ifdef PATCHWORK_SANITIZED
inline constexpr long kHostileRssLimitMb = 1500;
inline constexpr double kHostileSecondsLimit = 120;
#else
inline constexpr long kHostileRssLimitMb = 400;
inline constexpr double kHostileSecondsLimit = 30;
#endif

struct VitRun {
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal ended it
  bool timed_out = false;
  std::string out, err;
  long max_rss_mb = 0;
  double seconds = 0;  // wall time from start to exit
  // The stderr text without its trailing newline, and whether it is one line.
  bool one_line_error() const { return !err.empty() && err.find('\n') == err.size() - 1; }
};

struct VitCall {
  std::vector<std::string> args;
  std::map<std::string, std::string> env;  // added to the environment
  double timeout_seconds = 300;
  // > 0: SIGKILL the child this many seconds after its start, if it is still running.
  double kill_after_seconds = 0;
  // Called with each line of stdout as it arrives (and the child's pid), e.g. to signal it.
  std::function<void(const std::string& line, pid_t pid)> on_stdout_line;
  // The same for stderr.
  std::function<void(const std::string& line, pid_t pid)> on_stderr_line;
};

inline VitRun run_vit(const VitCall& call) {
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) std::abort();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::close(out_pipe[0]), ::close(out_pipe[1]), ::close(err_pipe[0]), ::close(err_pipe[1]);
    // A fresh process group: a test's signal reaches the program only.
    ::setpgid(0, 0);
    for (const auto& [k, v] : call.env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv{const_cast<char*>(PATCHWORK_VIT_PATH)};
    for (const auto& a : call.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(PATCHWORK_VIT_PATH, argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  VitRun r;
  std::string partial[2];
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  const auto start = std::chrono::steady_clock::now();
  int open_fds = 2;
  bool call_killed = false;
  while (open_fds > 0) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // The child is not reaped before the loop ends, so `pid` is still ours to signal.
    if (elapsed > call.timeout_seconds && !r.timed_out) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
    }
    if (call.kill_after_seconds > 0 && elapsed > call.kill_after_seconds && !call_killed) {
      ::kill(pid, SIGKILL);
      call_killed = true;
    }
    if (::poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      partial[i].append(buf, static_cast<std::size_t>(n));
      const auto& callback = i == 0 ? call.on_stdout_line : call.on_stderr_line;
      for (std::size_t nl; (nl = partial[i].find('\n')) != std::string::npos;) {
        const std::string line = partial[i].substr(0, nl);
        partial[i].erase(0, nl + 1);
        if (callback) callback(line, pid);
      }
    }
  }
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.max_rss_mb = usage.ru_maxrss / 1024;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

inline VitRun run_vit(std::vector<std::string> args) {
  VitCall call;
  call.args = std::move(args);
  return run_vit(call);
}

// `vit train` on the synthetic CIFAR-10 folder root/data into the run folder root/runs/<name>, with
// the model's config overrides (`--model key=value` each) and further flags.
inline std::vector<std::string> train_args(const std::string& root, const std::string& name,
                                           const std::vector<std::string>& model,
                                           const std::vector<std::string>& extra) {
  std::vector<std::string> a{"train",        "--data", root + "/data", "--output",
                             root + "/runs", "--name", name,           "--no-progress"};
  for (const auto& m : model) a.insert(a.end(), {"--model", m});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace pw::testing
