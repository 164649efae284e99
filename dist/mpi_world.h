// What communicator.cpp takes from mpi_communicator.cpp, which is built only when CMake found
// MPI (PATCHWORK_WITH_MPI).
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace pw::dist {

// MPI_Init_thread (MPI_THREAD_FUNNELED: only the main thread calls MPI) and the communicator of
// MPI_COMM_WORLD; destroying it finalizes MPI.
std::unique_ptr<Communicator> start_mpi(int* argc, char*** argv);

}  // namespace pw::dist
