// File: build_info.h
//
// The identity of this build, for --version, GetServerInfo, prunerd_build_info and every
// report: the project version (CMake's PROJECT_VERSION) and the git commit it was configured
// from ("unknown" outside a git checkout).
//
// Thread-safety: constants.
#pragma once

#include <string>

namespace prunerd {

std::string PrunerdVersion();  // "0.1.0"
std::string PrunerdCommit();   // "2fda30e1a2b3" or "unknown"

}  // namespace prunerd
