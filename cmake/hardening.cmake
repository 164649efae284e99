# Issue 13, "hostile files": builds that look for memory errors and undefined behaviour, and the
# libFuzzer targets of fuzz/ (cmake/fuzz.cmake). Included before any target is made: the flags
# are directory-wide, for every library, program and test alike.
#
#   PATCHWORK_SANITIZE=ON  the library, `vit` and the tests with AddressSanitizer and
#                          UndefinedBehaviorSanitizer at -O1 (`make sanitize`, build dir
#                          build-sanitize/; CMakeLists.txt leaves a few tags out of the suite)
#   PATCHWORK_FUZZ=ON      the same plus libFuzzer's coverage, and the fuzz targets (`make fuzz`,
#                          build dir build-fuzz/; clang only)
option(PATCHWORK_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(PATCHWORK_FUZZ "Build the libFuzzer targets of fuzz/ (needs clang)" OFF)

if(PATCHWORK_SANITIZE OR PATCHWORK_FUZZ)
  # Every undefined-behaviour report is fatal, so that a test (or a fuzz run) fails on it. -O1
  # (after the build type's -O3, so it wins), as AddressSanitizer's documentation suggests:
  # reasonable speed, exact stack traces, and a much quicker build than -O3.
  set(PATCHWORK_SANITIZER_FLAGS -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
      -fno-omit-frame-pointer)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    list(APPEND PATCHWORK_SANITIZER_FLAGS -gline-tables-only)
  else()
    list(APPEND PATCHWORK_SANITIZER_FLAGS -g1)
  endif()
  set(PATCHWORK_COVERAGE_FLAGS)
  if(PATCHWORK_FUZZ)
    if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
      message(FATAL_ERROR "PATCHWORK_FUZZ needs clang (libFuzzer): configure with "
                          "-DCMAKE_CXX_COMPILER=clang++")
    endif()
    set(PATCHWORK_COVERAGE_FLAGS -fsanitize=fuzzer-no-link)
  endif()
  add_compile_options(${PATCHWORK_SANITIZER_FLAGS} ${PATCHWORK_COVERAGE_FLAGS})
  add_link_options(-fsanitize=address,undefined)
  # Tells the tests (and the allocator's poisoning) that they run under the sanitizers.
  add_compile_definitions(PATCHWORK_SANITIZED=1)
endif()
