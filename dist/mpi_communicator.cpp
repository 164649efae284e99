// The communicator of an MPI job (built only with MPI). With a timeout, each collective is started
// non-blocking and polled; beside it every rank sends every other rank the number of each
// collective it enters (a "notice", 8 bytes), so that a collective still incomplete after the
// timeout can name the ranks whose notice never came: they are the ones that did not arrive.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "dist/mpi_world.h"

namespace pw::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kNoticeTag = 7;

void check(int rc, const char* call, std::string_view what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("[dist] {} ({}) failed: {}", what, call, std::string(text, static_cast<std::size_t>(len)));
}

int count_of(std::size_t n, std::string_view what) {
  PW_CHECK(n <= static_cast<std::size_t>(INT_MAX), "[dist] {}: {} values exceed MPI's int count",
           what, n);
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    // Errors come back as codes on these communicators, to be thrown with the collective named.
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_dup(MPI_COMM_WORLD, &control_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(control_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    const auto n = static_cast<std::size_t>(size_);
    arrived_.assign(n, 0);
    inbox_.assign(n, 0);
    recvs_.assign(n, MPI_REQUEST_NULL);
    sends_.assign(n, MPI_REQUEST_NULL);
    for (int p = 0; p < size_; ++p)
      if (p != rank_) post_receive(p);
  }

  ~MpiCommunicator() override {
    for (auto& r : recvs_)
      if (r != MPI_REQUEST_NULL) {
        MPI_Cancel(&r);
        MPI_Wait(&r, MPI_STATUS_IGNORE);
      }
    MPI_Waitall(size_, sends_.data(), MPI_STATUSES_IGNORE);
    MPI_Comm_free(&control_);
    MPI_Comm_free(&comm_);
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }
  void set_timeout(double seconds) override { timeout_ = seconds; }
  double timeout() const override { return timeout_; }

  void allreduce_sum(std::span<float> data, std::string_view what) override {
    const int n = count_of(data.size(), what);
    run(what, [&](MPI_Request* req) {
      return req ? MPI_Iallreduce(MPI_IN_PLACE, data.data(), n, MPI_FLOAT, MPI_SUM, comm_, req)
                 : MPI_Allreduce(MPI_IN_PLACE, data.data(), n, MPI_FLOAT, MPI_SUM, comm_);
    });
  }

  std::vector<double> allgather(std::span<const double> mine, std::string_view what) override {
    const int n = count_of(mine.size(), what);
    std::vector<double> all(mine.size() * static_cast<std::size_t>(size_));
    run(what, [&](MPI_Request* req) {
      return req ? MPI_Iallgather(mine.data(), n, MPI_DOUBLE, all.data(), n, MPI_DOUBLE, comm_, req)
                 : MPI_Allgather(mine.data(), n, MPI_DOUBLE, all.data(), n, MPI_DOUBLE, comm_);
    });
    return all;
  }

  void broadcast(std::span<std::uint8_t> data, int root, std::string_view what) override {
    const int n = count_of(data.size(), what);
    run(what, [&](MPI_Request* req) {
      return req ? MPI_Ibcast(data.data(), n, MPI_BYTE, root, comm_, req)
                 : MPI_Bcast(data.data(), n, MPI_BYTE, root, comm_);
    });
  }

  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; in case it does
  }

 private:
  // Starts collective number ++seq_: blocking without a timeout, else announced and polled.
  // start(nullptr) runs the blocking call, start(&req) starts the non-blocking one.
  template <typename Start>
  void run(std::string_view what, Start start) {
    ++seq_;
    if (timeout_ <= 0) {
      check(start(nullptr), "blocking collective", what);
      return;
    }
    notice_ = seq_;  // the previous notices were delivered: wait() completed their sends
    for (int p = 0; p < size_; ++p)
      if (p != rank_)
        check(MPI_Isend(&notice_, 1, MPI_INT64_T, p, kNoticeTag, control_, &sends_[p]), "MPI_Isend",
              what);
    MPI_Request req = MPI_REQUEST_NULL;
    check(start(&req), "non-blocking collective", what);
    wait(req, what);
  }

  void wait(MPI_Request& req, std::string_view what) {
    const auto start = Clock::now();
    bool done = false, sent = false;
    for (;;) {
      int flag = 0;
      if (!done) {
        check(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), "MPI_Test", what);
        done = flag != 0;
      }
      if (!sent) {
        check(MPI_Testall(size_, sends_.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Testall", what);
        sent = flag != 0;
      }
      collect_notices(what);
      if (done && sent) return;
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (waited > timeout_) timed_out(what);
      // Polling drives MPI's progress, so it stays fast while a reply is due soon; a long wait
      // (a slow rank, rank 0 writing a checkpoint) sleeps between polls instead of spinning.
      if (waited < 0.5)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  void post_receive(int peer) {
    check(MPI_Irecv(&inbox_[peer], 1, MPI_INT64_T, peer, kNoticeTag, control_, &recvs_[peer]),
          "MPI_Irecv", "collective notice");
  }

  void collect_notices(std::string_view what) {
    for (;;) {
      int index = MPI_UNDEFINED, flag = 0;
      check(MPI_Testany(size_, recvs_.data(), &index, &flag, MPI_STATUS_IGNORE), "MPI_Testany",
            what);
      if (!flag || index == MPI_UNDEFINED) return;
      arrived_[index] = std::max(arrived_[index], inbox_[index]);
      post_receive(index);
    }
  }

  [[noreturn]] void timed_out(std::string_view what) {
    std::vector<std::string> missing;
    for (int p = 0; p < size_; ++p)
      if (p != rank_ && arrived_[p] < seq_)
        missing.push_back(
            arrived_[p] == 0
                ? fmt::format("rank {} (no collective yet)", p)
                : fmt::format("rank {} (last seen entering collective #{})", p, arrived_[p]));
    if (missing.empty())
      fail(
          "[dist] {} (collective #{}) did not complete within {} s (--dist-timeout): every rank "
          "arrived, but the data did not get through",
          what, seq_, timeout_);
    fail(
        "[dist] {} (collective #{}) did not complete within {} s (--dist-timeout): {} did not "
        "arrive",
        what, seq_, timeout_, fmt::join(missing, ", "));
  }

  MPI_Comm comm_ = MPI_COMM_NULL;     // the collectives
  MPI_Comm control_ = MPI_COMM_NULL;  // the notices, kept apart from them
  int rank_ = 0, size_ = 1, local_size_ = 1;
  double timeout_ = kDefaultTimeoutSeconds;
  std::int64_t seq_ = 0;               // collectives this rank has entered
  std::int64_t notice_ = 0;            // the number being announced (the send buffer)
  std::vector<std::int64_t> arrived_;  // per rank: the last collective it announced
  std::vector<std::int64_t> inbox_;    // per rank: the receive buffer of its notices
  std::vector<MPI_Request> recvs_, sends_;
};

}  // namespace

std::unique_ptr<Communicator> start_mpi(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  return std::make_unique<MpiCommunicator>();
}

}  // namespace pw::dist
