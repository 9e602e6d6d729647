# Target helpers, in the spirit of Abseil's absl_cc_library: every target in the tree is declared
# through one of these so that warnings, include roots and test registration are uniform.
#
#   prunerd_cc_library(NAME name SRCS a.cc HDRS a.h DEPS pub... PRIVATE_DEPS priv... [TORCH])
#   prunerd_cc_binary(NAME name SRCS main.cc DEPS ... [OUTPUT_NAME exe])
#   prunerd_cc_test(NAME name SRCS a_test.cc DEPS ... [TORCH] [LABELS l...] [ENV K=V...]
#                   [TIMEOUT s] [SERIAL])
#
# TORCH on a library links libtorch PRIVATE: torch's headers, flags and (on the GPU host) its
# bundled protobuf headers never reach the library's dependants. Only core/ may say TORCH.
# TORCH on a test marks a test that loads libtorch; it is registered as one ctest per TEST()
# (discovered before the test runs, DISCOVERY_MODE PRE_TEST: see toolchain.md G4/G6).

set(PRUNERD_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)

# pip's libtorch (the GPU host) ships protobuf 3.13 headers in its include directory, which it
# adds with -isystem: a translation unit that includes both torch and a generated .pb.h would
# compile against the wrong protobuf (toolchain.md G7). Every target gets the system protobuf's
# headers through an -I directory, which the compiler searches before any -isystem one. (An
# "-I/usr/include" would be ignored as a system directory, hence the link farm.)
set(PRUNERD_PROTOBUF_FIRST ${PROJECT_BINARY_DIR}/protobuf_first)
if(NOT EXISTS ${PRUNERD_PROTOBUF_FIRST}/google/protobuf)
  file(MAKE_DIRECTORY ${PRUNERD_PROTOBUF_FIRST})
  file(CREATE_LINK ${Protobuf_INCLUDE_DIR}/google ${PRUNERD_PROTOBUF_FIRST}/google SYMBOLIC)
endif()

function(prunerd_target_common target)
  target_include_directories(${target} BEFORE PRIVATE ${PRUNERD_PROTOBUF_FIRST})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${target} PRIVATE ${PRUNERD_WARNINGS})
endfunction()

function(prunerd_cc_library)
  cmake_parse_arguments(A "TORCH" "NAME" "SRCS;HDRS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${A_NAME} STATIC ${A_SRCS} ${A_HDRS})
  prunerd_target_common(${A_NAME})
  target_include_directories(${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${A_NAME} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
  if(A_TORCH)
    target_link_libraries(${A_NAME} PRIVATE ${TORCH_LIBRARIES})
    target_compile_definitions(${A_NAME} PRIVATE PRUNERD_TORCH_TU=1)
  endif()
endfunction()

function(prunerd_cc_binary)
  cmake_parse_arguments(A "" "NAME;OUTPUT_NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  prunerd_target_common(${A_NAME})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  if(A_OUTPUT_NAME)
    set_target_properties(${A_NAME} PROPERTIES OUTPUT_NAME ${A_OUTPUT_NAME})
  endif()
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
endfunction()

function(prunerd_cc_test)
  if(NOT PRUNERD_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(A "TORCH;SERIAL" "NAME;TIMEOUT" "SRCS;DEPS;LABELS;ENV" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  prunerd_target_common(${A_NAME})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gmock GTest::gtest_main)
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  set(labels ${A_LABELS})
  if(A_TORCH)
    list(APPEND labels torch)
  endif()
  if(NOT labels)
    set(labels unit)  # an empty list would shift the property list below
  endif()
  # Paths reach the tests as compile definitions (core/testing/test_data.h reads them, an
  # environment variable of the same name without _DEFAULT overrides): gtest_discover_tests
  # splits an ENVIRONMENT list on ';', so only one entry would survive.
  target_compile_definitions(${A_NAME} PRIVATE
    PRUNERD_DEFAULT_TEST_DATA="${PRUNERD_TEST_DATA}"
    PRUNERD_DEFAULT_BIN_DIR="${PROJECT_BINARY_DIR}/bin"
    PRUNERD_DEFAULT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  set(props LABELS "${labels}" TIMEOUT ${A_TIMEOUT})
  if(A_ENV)
    list(LENGTH A_ENV n_env)
    if(n_env GREATER 1)
      message(FATAL_ERROR "prunerd_cc_test(${A_NAME}): at most one ENV entry (see above)")
    endif()
    list(APPEND props ENVIRONMENT "${A_ENV}")
  endif()
  if(A_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  gtest_discover_tests(${A_NAME} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 120
                       PROPERTIES ${props})
endfunction()
