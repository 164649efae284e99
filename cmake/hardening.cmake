# Issue 13, "hostile files": builds that look for memory errors and undefined behaviour, and the
# libFuzzer targets of fuzz/. Included at the end of CMakeLists.txt, after the targets it adds to.
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
  target_compile_options(patchwork PUBLIC ${PATCHWORK_SANITIZER_FLAGS} ${PATCHWORK_COVERAGE_FLAGS})
  target_link_options(patchwork PUBLIC -fsanitize=address,undefined)
  # Tells the tests (and the allocator's poisoning) that they run under the sanitizers.
  target_compile_definitions(patchwork PUBLIC PATCHWORK_SANITIZED=1)
endif()

if(PATCHWORK_FUZZ)
  # One libFuzzer program per fuzz/fuzz_*.cpp, and fuzz_seeds, which writes their seed corpora
  # with patchwork's own writers; `make fuzz` (fuzz/run.sh) builds and runs them all.
  file(GLOB PATCHWORK_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_*.cpp)
  add_custom_target(fuzz_targets)
  foreach(src ${PATCHWORK_FUZZ_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
    target_link_libraries(${name} PRIVATE patchwork)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzz_targets ${name})
  endforeach()
  add_executable(fuzz_seeds ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds.cpp)
  set_target_properties(fuzz_seeds PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  target_include_directories(fuzz_seeds PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tests)
  target_link_libraries(fuzz_seeds PRIVATE patchwork)
  add_dependencies(fuzz_targets fuzz_seeds)
endif()
