#include "core/interrupt.h"

#include <unistd.h>

#include <atomic>

namespace pw {
namespace {

std::atomic<bool> stop_flag{false};
std::atomic<bool> checks_throw{true};
static_assert(std::atomic<bool>::is_always_lock_free, "the flag is set from a signal handler");

extern "C" void on_stop_signal(int) {
  if (stop_flag.exchange(true)) _exit(130);  // the second signal: stop now, touch nothing
  constexpr char kNote[] = "\nstopping (press Ctrl-C again to exit at once)\n";
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, kNote, sizeof(kNote) - 1);
}

}  // namespace

void request_stop() {
  stop_flag.store(true);
}

bool stop_requested() {
  return stop_flag.load(std::memory_order_relaxed);
}

void clear_stop() {
  stop_flag.store(false);
}

bool interrupt_pending() {
  return stop_requested() && checks_throw.load(std::memory_order_relaxed);
}

void check_interrupt(const char* where) {
  if (interrupt_pending()) throw Interrupted(fmt::format("[{}] stopped by a signal", where));
}

StopOnSignals::StopOnSignals(Checks checks) {
  clear_stop();
  checks_throw.store(checks == Checks::Throw);
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes in progress go on; the loops poll the flag
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
}

StopOnSignals::~StopOnSignals() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
  checks_throw.store(true);
  clear_stop();  // the request was for the job that is now over
}

}  // namespace pw
