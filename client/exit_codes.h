// File: exit_codes.h
//
// prunectl's exit codes, made for CI: 0 only when the command did what was asked (for
// submit --wait / wait / watch: the job SUCCEEDED and passed the quality gates); every other
// outcome has its own code so a pipeline can tell them apart.
//
//   0  ok
//   1  the job FAILED
//   2  the job was CANCELLED
//   3  the daemon is unreachable (UNAVAILABLE / connection refused / deadline while connecting,
//      or it dropped the call: CANCELLED)
//   4  invalid request: bad flags, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
//      FAILED_PRECONDITION, OUT_OF_RANGE
//   5  authentication or authorization refused (UNAUTHENTICATED, PERMISSION_DENIED)
//   6  a quality gate failed (--max-ppl-increase, --max-ppl, --min-sparsity)
//   7  integrity: a download did not match its sha256 (or DATA_LOSS)
//   8  any other error (INTERNAL, UNKNOWN, ...)
//   9  wait --timeout elapsed while the job was still running
//
// Thread-safety: pure functions.
#pragma once

#include <grpcpp/support/status.h>

#include "prunerd/v1/job.pb.h"

namespace prunerd {

enum ExitCode : int {
  kExitOk = 0,
  kExitJobFailed = 1,
  kExitJobCancelled = 2,
  kExitUnreachable = 3,
  kExitInvalid = 4,
  kExitAuth = 5,
  kExitGateFailed = 6,
  kExitIntegrity = 7,
  kExitError = 8,
  kExitTimeout = 9,
};

// The exit code for a failed RPC.
int ExitCodeForStatus(const grpc::Status& status);
// The exit code for a job that has reached `state` (terminal states; kExitError otherwise).
int ExitCodeForJobState(v1::JobState state);

}  // namespace prunerd
