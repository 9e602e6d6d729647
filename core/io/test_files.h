// File: test_files.h
//
// Test-only helpers for the model-io tests: whole-file read/write without any of the code under
// test and little-endian encodings; the temporary directory and the shared data's location are
// core/testing's (temp_dir.h, test_data.h), named here for these tests.
//
//   TempDir tmp;
//   WriteBytes(tmp.path() + "/x.safetensors", bytes);
//
// Thread-safety: a TempDir belongs to one test.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/testing/temp_dir.h"
#include "core/testing/test_data.h"

namespace prunerd::testing {

using ::prunerd::TempDir;
using ::prunerd::TestDataDir;

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Little-endian encodings, for building files by hand.
inline std::string U64LE(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}
inline std::string I32LE(int32_t v) {
  uint32_t u = static_cast<uint32_t>(v);
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  return s;
}

}  // namespace prunerd::testing
