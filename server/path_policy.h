// File: path_policy.h
//
// Confines client-supplied paths (models, tokenizers, calibration/evaluation files) to the
// daemon's configured roots. A path is accepted as a plain path ("/models/prose16M",
// "prose16M" relative to a root) or a file:// URI ("file:///models/prose16M"), and resolves to
// a canonical absolute path inside one of the roots, or to an error:
//
//   InvalidArgument  empty; not a path or file:// URI; a ".." component; a NUL byte; outside
//                    every root lexically, or after resolving symlinks (a link that escapes);
//   NotFound         inside a root but nothing is there.
//
// A path outside the roots is rejected before the filesystem is consulted, so errors never
// reveal whether a file exists elsewhere. Messages start with the field name given by the
// caller ("spec.model: ...").
//
//   ASSIGN_OR_RETURN(PathPolicy roots, PathPolicy::Create({"/srv/models"}));
//   ASSIGN_OR_RETURN(std::string p, roots.Resolve("spec.model", "file:///srv/models/m.bin"));
//
// Thread-safety: immutable after Create; safe to share.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace prunerd {

class PathPolicy {
 public:
  // Every root must be an existing directory. An empty list accepts nothing.
  static absl::StatusOr<PathPolicy> Create(const std::vector<std::string>& roots);

  absl::StatusOr<std::string> Resolve(absl::string_view field, absl::string_view input) const;

  // True when `canonical_path` (already realpath'd) is one of the roots or below one.
  bool Contains(const std::string& canonical_path) const;
  // The canonical roots.
  const std::vector<std::string>& roots() const { return canonical_roots_; }

 private:
  std::vector<std::string> given_roots_;      // lexically normalized, as configured
  std::vector<std::string> canonical_roots_;  // realpath of each
};

// "file:///a/b%20c" -> "/a/b c"; plain paths are returned unchanged. InvalidArgument for other
// schemes, a non-local host, bad percent-escapes.
absl::StatusOr<std::string> PathFromUri(absl::string_view input);

// Lexical normalization: collapses "//" and "/./", drops a trailing "/". Does not touch "..".
std::string NormalizePath(absl::string_view path);

// True when `path` equals `root` or lies below it (component-wise, not a string prefix:
// "/a/bc" is not inside "/a/b").
bool IsWithin(absl::string_view path, absl::string_view root);

}  // namespace prunerd
