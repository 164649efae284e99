# dist/: data parallelism over MPI (README "Training on several machines", docs/distributed.md).
# MPI is optional: with it (Debian's libopenmpi-dev) `mpirun -np N vit train` trains on N ranks;
# without it, or with -DPATCHWORK_MPI=OFF, dist/ provides the one-process communicator and the
# program says what is missing when mpirun starts it. dist/ needs core only. While the library
# is one target, its sources join `patchwork`; split into floors, this block becomes
# patchwork::dist (linking core) and apps links it.
#
# Only dist/mpi_communicator.cpp sees MPI's headers and only dist/communicator.cpp its
# definition, so every other object compiles the same with or without MPI.
option(PATCHWORK_MPI "Build the MPI communicator of dist/ when MPI is found" ON)
target_sources(patchwork PRIVATE dist/communicator.cpp dist/buckets.cpp)
set(PATCHWORK_MPIEXEC "")
set(PATCHWORK_HAS_MPI OFF)
if(PATCHWORK_MPI)
  # The C API from C++ (the project enables no C compiler), without the deprecated C++ bindings.
  set(MPI_CXX_SKIP_MPICXX ON)
  find_package(MPI COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    set(PATCHWORK_HAS_MPI ON)
    add_library(patchwork_mpi OBJECT dist/mpi_communicator.cpp)
    target_include_directories(patchwork_mpi PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(patchwork_mpi PRIVATE MPI::MPI_CXX fmt::fmt)
    target_sources(patchwork PRIVATE $<TARGET_OBJECTS:patchwork_mpi>)
    # The libraries alone: MPI's compile flags stay on patchwork_mpi.
    target_link_libraries(patchwork INTERFACE ${MPI_CXX_LIBRARIES} ${MPI_CXX_LINK_FLAGS})
    set_source_files_properties(dist/communicator.cpp PROPERTIES COMPILE_DEFINITIONS
                                                                 PATCHWORK_WITH_MPI)
    if(MPIEXEC_EXECUTABLE)
      set(PATCHWORK_MPIEXEC ${MPIEXEC_EXECUTABLE})
    endif()
  endif()
endif()
message(STATUS "patchwork: data parallelism over MPI: ${PATCHWORK_HAS_MPI} (mpirun: '${PATCHWORK_MPIEXEC}')")

# tests/test_dist.cpp runs `mpirun ... vit train` jobs; without mpirun those tests skip.
if(TARGET patchwork_tests)
  target_compile_definitions(patchwork_tests PRIVATE PATCHWORK_MPIEXEC="${PATCHWORK_MPIEXEC}")
endif()
