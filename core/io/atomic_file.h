// File: atomic_file.h
//
// Durable, all-or-nothing file writing: AtomicFileWriter streams bytes into a temp file in the
// destination's directory ("<path>.tmp-XXXXXX"); Commit() fsyncs it, renames it over `path`
// and fsyncs the directory, so a crash leaves either the old file or the complete new one.
// A writer destroyed without a successful Commit() removes its temp file.
//
//   ASSIGN_OR_RETURN(auto w, AtomicFileWriter::Create("/out/model.safetensors"));
//   RETURN_IF_ERROR(w->Append(header.data(), header.size()));
//   RETURN_IF_ERROR(w->Commit());
//
// Thread-safety: an AtomicFileWriter is used from one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace prunerd {

class AtomicFileWriter {
 public:
  // Creates the temp file. Errors name the directory (NotFound when it does not exist).
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Append(const void* data, size_t size);
  // fsync, close, rename over the destination, fsync the directory. Call once.
  absl::Status Commit();

  const std::string& path() const { return path_; }
  size_t bytes_written() const { return bytes_written_; }

 private:
  AtomicFileWriter() = default;
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  size_t bytes_written_ = 0;
  bool committed_ = false;
};

// fsync of a directory, so that entries created or renamed in it are durable.
absl::Status FsyncDirectory(const std::string& dir);

}  // namespace prunerd
