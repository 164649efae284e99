// Stopping a long job from outside: a process-wide stop flag that signal handlers set and that
// the slow loops poll (reading a data set, the data loader, an evaluation), so that Ctrl-C or
// SIGTERM is seen within a batch wherever the program is, not only between training steps.
// A loop that sees the flag throws Interrupted; the code that owns the job (the trainer) catches
// it, saves what is to be saved and ends with exit code 130. A job of several MPI ranks cannot
// stop one rank alone (the others would wait for it at their next collective): it turns the
// throwing off (Checks::Poll) and exchanges the flag at its collectives instead.
#pragma once
#include <csignal>

#include "core/error.h"

namespace pw {

// Thrown by check_interrupt() once a stop was requested.
class Interrupted : public Error {
 public:
  using Error::Error;
};

// Asks the running job to stop (async-signal-safe: one atomic store).
void request_stop();
// Whether a stop was requested since the last clear_stop().
bool stop_requested();
// Forgets a request (a new job starts).
void clear_stop();
// Whether a stop was requested and check_interrupt() throws for it (not under Checks::Poll).
bool interrupt_pending();
// Throws Interrupted naming `where` when interrupt_pending().
void check_interrupt(const char* where);

// While alive, SIGINT and SIGTERM request a stop; a second one ends the process at once with
// exit code 130 (_exit: no destructor runs and no file is written, so a checkpoint being
// written stays as it was and only its temporary file is left behind). The handlers in place
// before are restored on destruction; the flag is cleared on construction and destruction.
class StopOnSignals {
 public:
  enum class Checks {
    Throw,  // check_interrupt() throws once a stop is requested (one process)
    Poll,   // it never throws: the job polls stop_requested() itself (several ranks)
  };
  explicit StopOnSignals(Checks checks = Checks::Throw);
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

}  // namespace pw
