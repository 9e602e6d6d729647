// File: temp_dir.h
//
// A fresh directory for one test, removed (recursively) when the object goes away.
//
//   TempDir dir;
//   std::string db = dir.path() + "/jobs.db";
//
// Thread-safety: immutable after construction.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "core/io/remove_tree.h"

namespace prunerd {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/prunerd-test-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    path_ = p ? std::string(p) : std::string();
  }
  ~TempDir() {
    if (!path_.empty()) (void)RemoveTree(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes a file (creating parent directories) and returns its path.
  std::string Write(const std::string& rel, const std::string& content) const {
    const std::string p = path_ + "/" + rel;
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path(), ec);
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  std::string Mkdir(const std::string& rel) const {
    const std::string p = path_ + "/" + rel;
    std::error_code ec;
    std::filesystem::create_directories(p, ec);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace prunerd
