// File: safetensors.h
//
// Reader and writer for the safetensors format: an 8-byte little-endian header length N, a
// JSON header of N bytes ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// optional "__metadata__": {str: str}}), then the raw little-endian tensor bytes.
//
// The reader mmaps the file and hands out views into the mapping, so a file is never read
// whole into memory. Every header field is validated against the file size before any data is
// touched: header length within the file, valid JSON, known dtype, non-negative shape,
// data_offsets ordered and inside the data section, byte count == numel * dtype size,
// no overlapping tensors. Errors name the file, the tensor and the problem.
//
//   ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open("model.safetensors"));
//   ASSIGN_OR_RETURN(TensorView w, file->Get("model.norm.weight"));
//
//   SafetensorsWriter::Write("out.safetensors", {{"w", view}}, {{"format", "pt"}});
//
// Thread-safety: an open SafetensorsFile is immutable; views stay valid while it lives.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/mmap_file.h"
#include "core/io/tensor_view.h"

namespace prunerd {

class SafetensorsFile {
 public:
  // Maps and validates `path`. InvalidArgument (DataLoss for truncation) on a malformed file.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  const std::string& path() const { return path_; }
  // Tensor names in file order (sorted by data offset).
  const std::vector<std::string>& names() const { return names_; }
  bool Contains(std::string_view name) const;
  // NotFound naming the tensor and the file when absent.
  absl::StatusOr<TensorView> Get(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  std::vector<std::string> names_;
  std::map<std::string, TensorView, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct NamedTensor {
  std::string name;
  TensorView view;
};

class SafetensorsWriter {
 public:
  // Writes `tensors` (in the given order) to `path` atomically: a temp file in the same
  // directory, fsync, rename, fsync of the directory. Fails without leaving a partial file.
  static absl::Status Write(const std::string& path, const std::vector<NamedTensor>& tensors,
                            const std::map<std::string, std::string>& metadata = {});
};

}  // namespace prunerd
