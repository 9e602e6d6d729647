// File: job_state.h
//
// The job state machine of proto/prunerd/v1/job.proto as data: which states are terminal and
// which changes of state a job may make. The daemon's lifecycle (server/job_lifecycle.h) makes
// each transition one store transaction, and the stores refuse any change this table does not
// allow, so no code path can, say, revive a SUCCEEDED job.
//
//   QUEUED ──► RUNNING ──► SUCCEEDED | FAILED | CANCELLED
//     │ ▲         │
//     │ └─────────┘  RUNNING → QUEUED: interrupted (shutdown, crash recovery, lost lease)
//     └──► CANCELLED | FAILED   (cancelled while queued; an unreadable record failed by recovery)
//
// Staying in a state is always allowed (progress, a cancel request, an artifact added).
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "prunerd/v1/job.pb.h"

namespace prunerd {

// SUCCEEDED, FAILED and CANCELLED.
bool IsTerminal(v1::JobState state);
// True when a job in `from` may move to `to` (also when from == to).
bool IsAllowedTransition(v1::JobState from, v1::JobState to);
// "queued", "running", "succeeded", "failed", "cancelled".
std::string StateName(v1::JobState state);

}  // namespace prunerd
