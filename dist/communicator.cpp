#include "dist/communicator.h"

#include <fmt/format.h>
#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "dist/mpi_world.h"

namespace pw::dist {
namespace {

std::unique_ptr<Communicator>& world_slot() {
  static std::unique_ptr<Communicator> world;
  return world;
}

// The size of the job as the launcher's environment gives it (Open MPI, then PMI/PMIx).
[[maybe_unused]] int launched_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return std::getenv("PMIX_RANK") ? 0 : 1;  // 0: launched, size unknown
}

}  // namespace

void LocalCommunicator::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name)) return true;
  return false;
}

bool built_with_mpi() {
#ifdef PATCHWORK_WITH_MPI
  return true;
#else
  return false;
#endif
}

Session::Session(int* argc, char*** argv) {
  if (!launched_by_mpi()) return;
#ifdef PATCHWORK_WITH_MPI
  world_slot() = start_mpi(argc, argv);
#else
  (void)argc;
  (void)argv;
  const int size = launched_size();
  PW_CHECK(
      size == 1,
      "[dist] this program was built without MPI (CMake found no libopenmpi-dev, or PATCHWORK_MPI "
      "was OFF) but an MPI launcher started it as one of {} ranks; install Open MPI "
      "(scripts/install-deps.sh) and rebuild, or run it without mpirun",
      size > 0 ? fmt::to_string(size) : std::string("several"));
#endif
}

Session::~Session() {
  world_slot().reset();  // an MPI world finalizes MPI here
}

Communicator& world() {
  static LocalCommunicator local;
  auto& w = world_slot();
  return w ? *w : static_cast<Communicator&>(local);
}

std::vector<double> sum_over_ranks(Communicator& comm, std::span<const double> mine,
                                   std::string_view what) {
  const std::vector<double> all = comm.allgather(mine, what);
  std::vector<double> sum(mine.size(), 0.0);
  for (int r = 0; r < comm.size(); ++r)
    for (std::size_t i = 0; i < mine.size(); ++i) sum[i] += all[r * mine.size() + i];
  return sum;
}

void require_same(Communicator& comm, std::uint64_t value, std::string_view what) {
  if (comm.size() == 1) return;
  // Two exact 32-bit halves: doubles carry them without rounding.
  const double mine[2] = {static_cast<double>(value >> 32),
                          static_cast<double>(value & 0xffffffffu)};
  const std::vector<double> all = comm.allgather(mine, what);
  std::vector<int> differ;
  for (int r = 1; r < comm.size(); ++r)
    if (all[2 * r] != all[0] || all[2 * r + 1] != all[1]) differ.push_back(r);
  if (!differ.empty())
    throw CollectiveError(
        fmt::format("[dist] {} differs between ranks: rank(s) {} disagree with rank 0", what,
                    fmt::join(differ, ", ")));
}

std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t seed) {
  constexpr std::uint64_t kPrime = 0x100000001b3ULL;
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * kPrime;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * kPrime;
  return h ^ n;
}

int default_threads(const Communicator& comm) {
  if (comm.size() == 1) return 0;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int allowed = CPU_COUNT(&set);
    if (allowed > 0 && allowed < cores) return allowed;  // mpirun bound this rank to these
  }
  return std::max(1, cores / std::max(1, comm.local_size()));
}

int report_fatal(const std::exception& e) {
  Communicator& w = world();
  if (w.size() == 1) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  const bool agreed = dynamic_cast<const CollectiveError*>(&e) != nullptr;
  if (!agreed || w.is_root()) {
    fmt::print(stderr, "error: [rank {} of {}] {}\n", w.rank(), w.size(), e.what());
  } else {
    // Every rank raised it: rank 0 reports it and ends the job; this one waits to be ended, and
    // ends the job itself only if rank 0 does not.
    std::this_thread::sleep_for(std::chrono::seconds(5));
  }
  std::fflush(stderr);
  w.abort(1);
  return 1;  // not reached: abort ends the process
}

}  // namespace pw::dist
