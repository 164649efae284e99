// The ranks of a data-parallel job and the collectives the trainer needs, over MPI when the
// program was started by mpirun, or over one process (every collective an identity) otherwise.
//
// Every collective of MpiCommunicator is bounded in time: a rank announces each collective it
// enters to the others (one small message each), and a collective that has not completed after
// set_timeout() seconds throws an error naming the ranks that never announced it, which ends the
// job (report_fatal). That is PyTorch's monitored_barrier idea applied to every collective,
// since a rank that dies or diverges otherwise leaves the others waiting forever.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace pw::dist {

// An error that every rank raises at the same point because the ranks agreed on it (a
// non-finite loss of the global batch, say): rank 0 alone reports it.
class CollectiveError : public Error {
 public:
  using Error::Error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The ranks of this job on this rank's machine.
  virtual int local_size() const = 0;
  bool is_root() const { return rank() == 0; }

  // Sums `data` element-wise over the ranks, in place; every rank gets the same values.
  // `what` names the collective in a timeout's message.
  virtual void allreduce_sum(std::span<float> data, std::string_view what) = 0;
  // Every rank's `mine` (of one length on all ranks), concatenated in rank order.
  virtual std::vector<double> allgather(std::span<const double> mine, std::string_view what) = 0;
  // Rank `root`'s bytes, into `data` on every rank (of one length on all ranks).
  virtual void broadcast(std::span<std::uint8_t> data, int root, std::string_view what) = 0;
  // Seconds a collective may wait for the other ranks; 0 waits forever (and uses MPI's
  // blocking collectives).
  virtual void set_timeout(double seconds) = 0;
  virtual double timeout() const = 0;
  // Ends every rank of the job with exit code `code` (MPI_Abort); one process just exits.
  [[noreturn]] virtual void abort(int code) = 0;
};

// One process: the collectives return what they are given.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  void allreduce_sum(std::span<float>, std::string_view) override {}
  std::vector<double> allgather(std::span<const double> mine, std::string_view) override {
    return {mine.begin(), mine.end()};
  }
  void broadcast(std::span<std::uint8_t>, int, std::string_view) override {}
  void set_timeout(double seconds) override { timeout_ = seconds; }
  double timeout() const override { return timeout_; }
  [[noreturn]] void abort(int code) override;

 private:
  double timeout_ = 0;
};

// The default of --dist-timeout: long enough for rank 0's evaluation, checkpoint and curves at
// an epoch end, which the other ranks wait for at their next collective.
inline constexpr double kDefaultTimeoutSeconds = 300;

// Starts MPI for the life of the object when this process was launched by mpirun (or another
// MPI launcher: the PMI environment says so) and patchwork was built with MPI; world() is then
// the job's communicator. Otherwise world() stays the one-process communicator. A process
// launched by mpirun into a job of several ranks but built without MPI is an error.
class Session {
 public:
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

// The communicator of every rank of the job (the one-process communicator without a Session).
Communicator& world();

// True when the environment shows an MPI launcher (mpirun, srun) started this process.
bool launched_by_mpi();

// Whether this build can run on several ranks (MPI was found when it was configured).
bool built_with_mpi();

// Every rank's values summed in rank order: the same bits on every rank whatever the number of
// ranks or the MPI algorithm (for loss sums, counts and flags, not for the gradients).
std::vector<double> sum_over_ranks(Communicator& comm, std::span<const double> mine,
                                   std::string_view what);

// Throws a CollectiveError on every rank when `value` differs between ranks, naming `what` and
// the ranks that differ from rank 0.
void require_same(Communicator& comm, std::uint64_t value, std::string_view what);

// A 64-bit hash of bytes (FNV-1a over 8-byte words), for require_same on data and weights.
std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t seed = 0);

// Compute threads for one rank when the user asked for all cores (--threads 0): every core the
// rank may run on when mpirun bound it to some, else the machine's cores shared by the ranks on
// it. 0 (all cores, as on one process) when the job has one rank.
int default_threads(const Communicator& comm);

// Reports an exception that ends the program and returns its exit code (1): "error: ..." on
// stderr, naming the rank when the job has several; then, on several ranks, ends the whole job
// (MPI_Abort) so that no rank waits for one that is gone. A CollectiveError is printed by rank 0
// only.
int report_fatal(const std::exception& e);

}  // namespace pw::dist
