// File: test_data.h
//
// Where tests find the shared data (models, tokenizers, texts): $PRUNERD_TEST_DATA, set by
// prunerd_cc_test for every test, else ../shared/data relative to the source tree.
//
//   std::string model = TestDataPath("models/prose16M");
//
// Thread-safety: pure functions.
#pragma once

#include <cstdlib>
#include <string>

namespace prunerd {

inline std::string TestDataDir() {
  if (const char* d = std::getenv("PRUNERD_TEST_DATA"); d != nullptr && *d != '\0') return d;
  return "../shared/data";
}

inline std::string TestDataPath(const std::string& rel) { return TestDataDir() + "/" + rel; }

// The repository root (golden files live under tests/golden).
inline std::string SourceDir() {
  if (const char* d = std::getenv("PRUNERD_SOURCE_DIR"); d != nullptr && *d != '\0') return d;
  return ".";
}

}  // namespace prunerd
