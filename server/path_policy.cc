#include "server/path_policy.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace prunerd {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool HasDotDot(absl::string_view path) {
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return true;
  }
  return false;
}

absl::StatusOr<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(std::strerror(err));
    return absl::InternalError(absl::StrCat("realpath ", path, ": ", std::strerror(err)));
  }
  return std::string(buf);
}

}  // namespace

std::string NormalizePath(absl::string_view path) {
  const bool absolute = absl::StartsWith(path, "/");
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    parts.push_back(part);
  }
  std::string joined = absl::StrJoin(parts, "/");
  if (absolute) return absl::StrCat("/", joined);
  return joined.empty() ? "." : joined;
}

bool IsWithin(absl::string_view path, absl::string_view root) {
  if (root == "/") return absl::StartsWith(path, "/");
  if (!absl::StartsWith(path, root)) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

absl::StatusOr<std::string> PathFromUri(absl::string_view input) {
  const size_t scheme_end = input.find("://");
  if (scheme_end == absl::string_view::npos) return std::string(input);
  const absl::string_view scheme = input.substr(0, scheme_end);
  if (scheme != "file") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported URI scheme \"", scheme, "\" (only file:// URIs and paths)"));
  }
  absl::string_view rest = input.substr(scheme_end + 3);
  const size_t slash = rest.find('/');
  const absl::string_view host = slash == absl::string_view::npos ? rest : rest.substr(0, slash);
  if (!host.empty() && host != "localhost") {
    return absl::InvalidArgumentError(
        absl::StrCat("file:// URI with a remote host \"", host, "\" is not supported"));
  }
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError("file:// URI without a path");
  }
  absl::string_view encoded = rest.substr(slash);
  std::string out;
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] != '%') {
      out.push_back(encoded[i]);
      continue;
    }
    if (i + 2 >= encoded.size()) {
      return absl::InvalidArgumentError("truncated percent-escape in file:// URI");
    }
    const int hi = HexValue(encoded[i + 1]);
    const int lo = HexValue(encoded[i + 2]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("bad percent-escape in file:// URI");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

absl::StatusOr<PathPolicy> PathPolicy::Create(const std::vector<std::string>& roots) {
  PathPolicy p;
  for (const std::string& r : roots) {
    if (r.empty()) return absl::InvalidArgumentError("model root: empty path");
    struct stat st;
    if (::stat(r.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model root ", r, ": not an existing directory"));
    }
    absl::StatusOr<std::string> canon = RealPath(r);
    if (!canon.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model root ", r, ": ", canon.status().message()));
    }
    p.given_roots_.push_back(NormalizePath(r));
    p.canonical_roots_.push_back(*canon);
  }
  return p;
}

bool PathPolicy::Contains(const std::string& canonical_path) const {
  for (const std::string& root : canonical_roots_) {
    if (IsWithin(canonical_path, root)) return true;
  }
  return false;
}

absl::StatusOr<std::string> PathPolicy::Resolve(absl::string_view field,
                                                absl::string_view input) const {
  if (input.empty()) return FieldError(field, "is required");
  if (input.find('\0') != absl::string_view::npos) return FieldError(field, "contains a NUL byte");
  absl::StatusOr<std::string> path = PathFromUri(input);
  if (!path.ok()) return FieldError(field, path.status().message());
  if (path->empty() || path->find('\0') != std::string::npos) {
    return FieldError(field, "is not a usable path");
  }
  if (HasDotDot(*path)) {
    return FieldError(field, absl::StrCat("\"..\" is not allowed in paths: ", input));
  }
  if (canonical_roots_.empty()) return FieldError(field, "the daemon has no model roots");

  // Candidates: an absolute path as is (it must lie lexically inside a root); a relative path
  // below each root in turn.
  std::vector<std::string> candidates;
  if (absl::StartsWith(*path, "/")) {
    const std::string norm = NormalizePath(*path);
    bool inside = false;
    for (size_t i = 0; i < given_roots_.size(); ++i) {
      inside = inside || IsWithin(norm, given_roots_[i]) || IsWithin(norm, canonical_roots_[i]);
    }
    if (!inside) {
      return FieldError(field, absl::StrCat("path is outside the configured model roots: ", input));
    }
    candidates.push_back(norm);
  } else {
    for (const std::string& root : canonical_roots_) {
      candidates.push_back(NormalizePath(absl::StrCat(root, "/", *path)));
    }
  }
  for (const std::string& candidate : candidates) {
    struct stat st;
    if (::lstat(candidate.c_str(), &st) != 0) continue;
    absl::StatusOr<std::string> canon = RealPath(candidate);
    if (!canon.ok()) {
      if (absl::IsNotFound(canon.status())) {
        // A dangling symlink: report where it points only if that is inside the roots.
        return absl::NotFoundError(absl::StrCat(field, ": broken link inside the roots: ", input));
      }
      return canon.status();
    }
    if (!Contains(*canon)) {
      return FieldError(field, absl::StrCat("resolves outside the configured model roots "
                                            "(symbolic link?): ",
                                            input));
    }
    return *canon;
  }
  return absl::NotFoundError(absl::StrCat(field, ": no such file inside the model roots: ", input));
}

}  // namespace prunerd
