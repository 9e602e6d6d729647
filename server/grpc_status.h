// File: grpc_status.h
//
// The one place where the daemon's internal absl::Status becomes a gRPC status. Everything
// inside server/ returns absl::Status; only the RPC layer calls ToGrpcStatus, so the mapping
// policy lives here and nowhere else:
//
//   bad input (INVALID_ARGUMENT, with the field named)  -> INVALID_ARGUMENT
//   unknown job / artifact / file inside the roots      -> NOT_FOUND
//   job in the wrong state                              -> FAILED_PRECONDITION
//   request_id reused with another spec                 -> ALREADY_EXISTS
//   missing / unknown token                             -> UNAUTHENTICATED
//   token without the role                              -> PERMISSION_DENIED
//   daemon draining for shutdown                        -> UNAVAILABLE
//   anything else keeps its canonical code (absl and gRPC share the numbering); an
//   unknown code becomes UNKNOWN.
//
// Auth failures are never mapped to UNAVAILABLE (clients retry UNAVAILABLE).
//
// Thread-safety: a pure function.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace prunerd {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace prunerd
