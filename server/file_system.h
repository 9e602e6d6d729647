// File: file_system.h
//
// The few filesystem operations the daemon's durability depends on, behind an interface (the
// LevelDB Env idea) so tests can inject failures (a failing fsync, a failing rename) and check
// that no partial artifact is ever left under its final name.
//
//   FileSystem* fs = FileSystem::Default();
//   RETURN_IF_ERROR(WriteFileAtomically(fs, "/data/jobs/j-1/report.json", json));
//   RETURN_IF_ERROR(SyncTree(fs, "/data/jobs/j-1/model.tmp"));
//
// WriteFileAtomically writes "<path>.tmp", fsyncs it, renames it over <path> and fsyncs the
// directory: after it returns OK the new content survives a crash; if it fails, <path> still
// holds the old content (or does not exist) and the temp file is removed.
//
// Thread-safety: implementations must be safe to call concurrently (PosixFileSystem is
// stateless).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace prunerd {

struct FileEntry {
  std::string relative_path;  // "model/config.json", '/'-separated, relative to the listed dir
  int64_t size = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // mkdir -p.
  virtual absl::Status CreateDirs(const std::string& path) = 0;
  // Creates or truncates `path` and writes `data` (no fsync).
  virtual absl::Status WriteFile(const std::string& path, absl::string_view data) = 0;
  // Reads a whole file.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // fsync of a regular file / of a directory (its entries).
  virtual absl::Status SyncFile(const std::string& path) = 0;
  virtual absl::Status SyncDir(const std::string& path) = 0;
  // rename(2): atomic replacement of `to` (a file, or an empty directory).
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // rm -rf; OK when `path` does not exist.
  virtual absl::Status RemoveAll(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual bool IsDirectory(const std::string& path) = 0;
  // Regular files under `dir`, recursively, sorted by relative path. Symlinks are not followed
  // and not listed.
  virtual absl::StatusOr<std::vector<FileEntry>> ListFiles(const std::string& dir) = 0;

  // The real POSIX filesystem.
  static FileSystem* Default();
};

absl::Status WriteFileAtomically(FileSystem* fs, const std::string& path, absl::string_view data);
// fsyncs every regular file and every directory under `dir` (and `dir` itself).
absl::Status SyncTree(FileSystem* fs, const std::string& dir);
// "a/b/c" -> "a/b"; "c" -> ".".
std::string DirName(const std::string& path);

}  // namespace prunerd
