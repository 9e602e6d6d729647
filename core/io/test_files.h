// File: test_files.h
//
// Test-only helpers for the model-io tests: a self-deleting temporary directory, whole-file
// read/write without any of the code under test, and the location of the shared test data
// ($PRUNERD_TEST_DATA, else ../shared/data beside the source tree).
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

#include "core/io/remove_tree.h"

namespace prunerd::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "prunerd-test-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data()) != nullptr ? buf.data() : "";
  }
  ~TempDir() {
    if (!path_.empty()) (void)RemoveTree(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

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

inline std::string TestDataDir() {
  if (const char* env = ::getenv("PRUNERD_TEST_DATA"); env != nullptr && *env != '\0') return env;
  if (const char* src = ::getenv("PRUNERD_SOURCE_DIR"); src != nullptr && *src != '\0') {
    return std::string(src) + "/../shared/data";
  }
#ifdef PRUNERD_DEFAULT_TEST_DATA
  return PRUNERD_DEFAULT_TEST_DATA;
#else
  return "../shared/data";
#endif
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
