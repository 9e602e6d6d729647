// File: temp_dir.h  (test-only)
//
// The one temporary-directory helper of the tests: a fresh directory under $TMPDIR (or the
// system's temp directory), removed recursively when the object goes away.
//
//   TempDir dir;
//   std::string db = dir.Join("jobs.db");
//   dir.Write("models/tiny.bin", "weights");   // parents created
//   dir.Mkdir("datasets");
//
// Thread-safety: a TempDir belongs to one test; its methods only read path().
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "core/io/remove_tree.h"

namespace prunerd {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        (base != nullptr && *base != '\0' ? std::string(base)
                                          : std::filesystem::temp_directory_path().string()) +
        "/prunerd-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data()) != nullptr ? std::string(buf.data()) : std::string();
  }
  ~TempDir() {
    if (!path_.empty()) (void)RemoveTree(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Join(const std::string& rel) const { return path_ + "/" + rel; }
  // Writes a file (creating parent directories) and returns its path.
  std::string Write(const std::string& rel, const std::string& content) const {
    const std::string p = Join(rel);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path(), ec);
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  // Creates a directory (and its parents) and returns its path.
  std::string Mkdir(const std::string& rel) const {
    const std::string p = Join(rel);
    std::error_code ec;
    std::filesystem::create_directories(p, ec);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace prunerd
