// File: file_digests.h
//
// SHA-256 of a list of files, computed on a background thread so that hashing a large model
// (13 GB for 7B, 140 GB for 70B) overlaps the work that reads it anyway. Destroying the object
// before Wait() stops the hashing at the next block.
//
//   FileDigests digests(checkpoint->source_files());   // starts at once
//   ... prune ...
//   ASSIGN_OR_RETURN(std::vector<FileDigest> files, digests.Wait());
//
// Thread-safety: Wait() from one thread; the hashing thread touches only its own state.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace prunerd {

struct FileDigest {
  std::string path;
  int64_t size_bytes = 0;
  std::string sha256;  // lower-case hex
};

class FileDigests {
 public:
  explicit FileDigests(std::vector<std::string> paths);
  ~FileDigests();
  FileDigests(const FileDigests&) = delete;
  FileDigests& operator=(const FileDigests&) = delete;

  // Blocks until every file is hashed. NotFound / Internal naming the file on error.
  absl::StatusOr<std::vector<FileDigest>> Wait();

 private:
  void Run();

  const std::vector<std::string> paths_;
  std::atomic<bool> stop_{false};
  absl::Status status_;             // written by the thread, read after join
  std::vector<FileDigest> result_;  // likewise
  std::thread thread_;
  bool joined_ = false;
};

// One digest over several: SHA-256 of "name size sha256\n" per file, in order (names without
// their directory, so a copied model keeps its fingerprint).
std::string CombinedDigest(const std::vector<FileDigest>& files);

}  // namespace prunerd
