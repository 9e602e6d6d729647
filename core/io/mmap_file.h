// File: mmap_file.h
//
// A read-only memory mapping of a whole file (MAP_PRIVATE, PROT_READ), unmapped on destruction.
// Empty files map to a null pointer with size 0.
//
// Thread-safety: immutable after Open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace prunerd {

class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Small helpers used by all loaders. ReadFileToString fails with NotFound / PermissionDenied /
// InvalidArgument (a directory) naming the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// Atomic replace: temp file next to `path`, write, fsync, rename, fsync the directory.
absl::Status WriteFileAtomic(const std::string& path, std::string_view contents);

}  // namespace prunerd
