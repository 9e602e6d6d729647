// File: remove_tree.h
//
// RemoveTree(path): deletes a file or a directory tree, never following symbolic links (a link
// is removed, not what it points to). A missing path is not an error.
//
// Why not std::filesystem::remove_all: on the GPU host, PyTorch's pip libtorch.so exports its
// own copy of std::filesystem::remove_all, and a binary that links it binds to that copy, which
// jumps through a null pointer (measured: SIGSEGV with pc 0 in every prune parity test on the
// H100). nftw(3) has no such twin.
//
// Thread-safety: safe to call concurrently on different paths.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace prunerd {

absl::Status RemoveTree(const std::string& path);

}  // namespace prunerd
