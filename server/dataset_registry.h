// File: dataset_registry.h
//
// Named calibration / evaluation datasets, registered by the operator in the daemon's dataset
// directory, so clients can say {dataset: "wikitext2-test"} instead of knowing server paths.
//
// A dataset directory holds:
//  - data files: each regular file (or symlink to one) registers its name without the last
//    extension: "wikitext2-test.raw" -> "wikitext2-test", "c4-sample.jsonl" -> "c4-sample";
//  - optionally datasets.json, a JSON object mapping names to paths (absolute, or relative to
//    the directory): {"wikitext2-test": "/srv/data/wikitext-2-raw/wiki.test.raw"}. Entries here
//    win over files with the same name. The operator owns this directory, so its paths are
//    trusted and need not lie inside the model roots.
// Names are 1-64 characters of [A-Za-z0-9._-]. The directory is re-read on every lookup (it
// is small), so datasets can be added without a restart.
//
//   DatasetRegistry reg("/srv/prunerd/datasets");
//   ASSIGN_OR_RETURN(std::string path, reg.Resolve("spec.calibration.dataset", "c4-sample"));
//
// Thread-safety: const methods are safe to call concurrently.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace prunerd {

class DatasetRegistry {
 public:
  // An empty `dir` registers nothing.
  explicit DatasetRegistry(std::string dir) : dir_(std::move(dir)) {}

  // name -> absolute path. InvalidArgument for an unreadable datasets.json.
  absl::StatusOr<std::map<std::string, std::string>> List() const;
  std::vector<std::string> Names() const;
  // NotFound naming the field and the dataset (and listing the known names) when absent;
  // InvalidArgument for a malformed name.
  absl::StatusOr<std::string> Resolve(absl::string_view field, absl::string_view name) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

bool IsValidDatasetName(absl::string_view name);

}  // namespace prunerd
