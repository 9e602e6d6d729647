#include "core/io/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "core/io/errno_status.h"

namespace prunerd {
namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  return std::remove(path) == 0 ? 0 : errno;
}

}  // namespace

absl::Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoToStatus(errno, "remove", path);
  }
  // Depth first (children before their directory), not crossing symbolic links.
  const int rc = ::nftw(path.c_str(), RemoveEntry, 32, FTW_DEPTH | FTW_PHYS);
  if (rc == 0) return absl::OkStatus();
  return ErrnoToStatus(rc > 0 ? rc : errno, "remove", path);
}

}  // namespace prunerd
