# The libFuzzer targets of fuzz/ (issue 13), built with PATCHWORK_FUZZ=ON (cmake/hardening.cmake
# sets the flags): `make fuzz`, build dir build-fuzz/, clang only.
if(PATCHWORK_FUZZ)
  # One libFuzzer program per fuzz/fuzz_*.cpp, and fuzz_seeds, which writes their seed corpora
  # with patchwork's own writers; `make fuzz` (fuzz/run.sh) builds and runs them all.
  file(GLOB PATCHWORK_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_*.cpp)
  add_custom_target(fuzz_targets)
  foreach(src ${PATCHWORK_FUZZ_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
    target_link_libraries(${name} PRIVATE patchwork_app)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzz_targets ${name})
  endforeach()
  add_executable(fuzz_seeds ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds.cpp)
  set_target_properties(fuzz_seeds PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  target_include_directories(fuzz_seeds PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tests)
  target_link_libraries(fuzz_seeds PRIVATE patchwork_app ZLIB::ZLIB)
  target_include_directories(fuzz_seeds SYSTEM PRIVATE ${STB_INCLUDE_DIR})
  add_dependencies(fuzz_targets fuzz_seeds)
endif()
