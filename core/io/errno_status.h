// File: errno_status.h
//
// Turns a failed POSIX call's errno into an absl::Status that names the operation and the path:
// ENOENT -> NotFound, EACCES/EPERM -> PermissionDenied, ENOSPC/EDQUOT -> ResourceExhausted,
// anything else -> Internal. Used by the io library's file helpers.
//
//   if (fd < 0) return ErrnoToStatus(errno, "open", path);
//
// Thread-safety: pure function.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace prunerd {

absl::Status ErrnoToStatus(int err, const std::string& operation, const std::string& path);

}  // namespace prunerd
