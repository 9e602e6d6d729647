// File: test_data.h
//
// Where tests find things. Each is an environment variable when set, else the value CMake
// compiled into the test (prunerd_cc_test defines PRUNERD_DEFAULT_*):
//   TestDataDir()  $PRUNERD_TEST_DATA   shared data (models, tokenizers, texts)
//   BinDir()       $PRUNERD_BIN_DIR     built binaries (prunerd, prunectl, ...)
//   SourceDir()    $PRUNERD_SOURCE_DIR  the repository root
//   GoldenDir()    $PRUNERD_GOLDEN_DIR  reference goldens (default <source>/tests/golden)
//   TestDevice()   $PRUNERD_TEST_DEVICE the device of engine parity tests (default cpu)
//
//   std::string model = TestDataPath("models/prose16M");
//
// Thread-safety: pure functions.
#pragma once

#include <cstdlib>
#include <string>

#ifndef PRUNERD_DEFAULT_TEST_DATA
#define PRUNERD_DEFAULT_TEST_DATA "../shared/data"
#endif
#ifndef PRUNERD_DEFAULT_BIN_DIR
#define PRUNERD_DEFAULT_BIN_DIR "build/bin"
#endif
#ifndef PRUNERD_DEFAULT_SOURCE_DIR
#define PRUNERD_DEFAULT_SOURCE_DIR "."
#endif

namespace prunerd {

inline std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : fallback;
}

inline std::string TestDataDir() { return EnvOr("PRUNERD_TEST_DATA", PRUNERD_DEFAULT_TEST_DATA); }
inline std::string TestDataPath(const std::string& rel) { return TestDataDir() + "/" + rel; }
inline std::string BinDir() { return EnvOr("PRUNERD_BIN_DIR", PRUNERD_DEFAULT_BIN_DIR); }
inline std::string SourceDir() {
  return EnvOr("PRUNERD_SOURCE_DIR", PRUNERD_DEFAULT_SOURCE_DIR);
}
inline std::string GoldenDir() {
  return EnvOr("PRUNERD_GOLDEN_DIR", (SourceDir() + "/tests/golden").c_str());
}
inline std::string TestDevice() { return EnvOr("PRUNERD_TEST_DEVICE", "cpu"); }

}  // namespace prunerd
