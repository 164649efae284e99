# dist/: data parallelism over MPI (README "Training on several machines", docs/distributed.md),
# the floor patchwork::dist (core only). MPI is optional: with it (Debian's libopenmpi-dev)
# `mpirun -np N vit train` trains on N ranks; without it, or with -DPATCHWORK_MPI=OFF, dist/
# provides the one-process communicator and the program says what is missing when mpirun starts
# it.
#
# Only dist/mpi_communicator.cpp sees MPI's headers and only dist/communicator.cpp its
# definition, so every other object compiles the same with or without MPI.
option(PATCHWORK_MPI "Build the MPI communicator of dist/ when MPI is found" ON)
patchwork_floor(patchwork_dist dist FOLDERS dist EXCLUDE "/dist/mpi_communicator\\.cpp$")
target_link_libraries(patchwork_dist PUBLIC patchwork_core)
set(PATCHWORK_MPIEXEC "")
set(PATCHWORK_HAS_MPI OFF)
if(PATCHWORK_MPI)
  # The C API from C++ (the project enables no C compiler), without the deprecated C++ bindings.
  set(MPI_CXX_SKIP_MPICXX ON)
  find_package(MPI COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    set(PATCHWORK_HAS_MPI ON)
    target_sources(patchwork_dist PRIVATE dist/mpi_communicator.cpp)
    target_link_libraries(patchwork_dist PRIVATE MPI::MPI_CXX)
    set_source_files_properties(dist/communicator.cpp PROPERTIES COMPILE_DEFINITIONS
                                                                 PATCHWORK_WITH_MPI)
    if(MPIEXEC_EXECUTABLE)
      set(PATCHWORK_MPIEXEC ${MPIEXEC_EXECUTABLE})
    endif()
  endif()
endif()
message(STATUS "patchwork: data parallelism over MPI: ${PATCHWORK_HAS_MPI} (mpirun: '${PATCHWORK_MPIEXEC}')")
