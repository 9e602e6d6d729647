// File: job_lifecycle.h
//
// Every change a job's record goes through, as named transitions of the state machine of
// core/api/job_state.h. Each is one store transaction that reads the record, refuses the change
// when the job's state does not allow it (FailedPrecondition naming the state), writes the new
// record and its event together, and then publishes the event to live watchers. Terminal
// transitions also count the outcome in the metrics and write the job's event log
// (events.jsonl) into its artifacts, so every finished job has one, however it ended.
//
//          Queue            Start               Succeed | Fail | FinishCancel
//   (new) ──────► QUEUED ─────────► RUNNING ───────────────────────────────► SUCCEEDED | FAILED
//                   │ ▲               │  ▲                                  | CANCELLED
//      CancelQueued │ │ Interrupt,    │  │ Progress, RequestCancel
//      FailQueued   │ │ RecoverCrashed└──┘
//                   ▼
//         CANCELLED | FAILED
//
// A cancel is durable before it is acknowledged: RequestCancel stores cancel_requested, Start
// refuses to run a job whose cancel was requested (it ends CANCELLED instead), and recovery
// ends such a job CANCELLED rather than re-queueing it.
//
// The scheduler and the job manager call these and change job records in no other way.
//
//   JobLifecycle life({.store = &store, .hub = &hub, .artifacts = &artifacts, ...});
//   ASSIGN_OR_RETURN(v1::Job job, life.Start(id, "cuda:0"));
//   ASSIGN_OR_RETURN(job, life.Succeed(id, result));
//
// Thread-safety: safe to call from any thread (the store serialises transactions).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prunerd/v1/job.pb.h"
#include "server/artifact_store.h"
#include "server/clock.h"
#include "server/event_hub.h"
#include "server/job_store.h"
#include "server/metrics.h"

namespace prunerd {

class JobLifecycle {
 public:
  struct Deps {
    JobStore* store;
    JobEventHub* hub;
    ArtifactStore* artifacts;
    ServerMetrics* metrics;
    Clock* clock;
  };
  explicit JobLifecycle(Deps deps) : deps_(deps) {}

  // (new) -> QUEUED: the record and its first event, durably. With a request_id already known
  // it returns that job (created = false), or AlreadyExists for another spec (store contract).
  absl::StatusOr<CreateResult> Queue(v1::Job job, const std::string& message,
                                     const std::string& spec_hash);
  // QUEUED -> RUNNING on `device`: attempt + 1, start time, progress STARTING. A job whose
  // cancel was requested goes QUEUED -> CANCELLED instead (the returned job says which).
  absl::StatusOr<v1::Job> Start(const std::string& id, const std::string& device);
  // RUNNING -> RUNNING: the job's latest progress, as a progress event.
  absl::StatusOr<v1::Job> Progress(const std::string& id, const v1::JobProgress& progress);
  // QUEUED or RUNNING: records cancel_requested (once) with an event naming `who`. The caller
  // signals the worker after this returns.
  absl::StatusOr<v1::Job> RequestCancel(const std::string& id, const std::string& who);
  // QUEUED -> CANCELLED.
  absl::StatusOr<v1::Job> CancelQueued(const std::string& id, const std::string& who);
  // QUEUED -> FAILED: a job that cannot run at all (its record is unusable).
  absl::StatusOr<v1::Job> FailQueued(const std::string& id, const absl::Status& error,
                                     const std::string& reason);
  // RUNNING -> CANCELLED: the worker stopped after a cancel request.
  absl::StatusOr<v1::Job> FinishCancel(const std::string& id);
  // RUNNING -> SUCCEEDED with the run's result (artifacts committed by the caller).
  absl::StatusOr<v1::Job> Succeed(const std::string& id, v1::JobResult result);
  // RUNNING -> FAILED with the error's code, a reason of the closed set and its message.
  absl::StatusOr<v1::Job> Fail(const std::string& id, const absl::Status& error,
                               const std::string& reason);
  // RUNNING -> QUEUED: a graceful stop (shutdown, drain deadline). Not a crash: it does not
  // count towards crash_recoveries.
  absl::StatusOr<v1::Job> Interrupt(const std::string& id, const std::string& why);
  // Recovery of a job found RUNNING (or QUEUED with a cancel request) at start-up: CANCELLED
  // when a cancel was requested; FAILED with reason "daemon_restart" once the daemon died more
  // than `max_crash_retries` times while it ran; else QUEUED with crash_recoveries + 1.
  absl::StatusOr<v1::Job> RecoverCrashed(const std::string& id, int max_crash_retries);

 private:
  // Runs `mutate` in one transaction, publishes the event, and for a terminal state counts
  // the outcome and writes the event log.
  absl::StatusOr<v1::Job> Transition(const std::string& id, const JobMutator& mutate);
  void OnTerminal(const v1::Job& job);
  void WriteEventLog(const std::string& id);

  const Deps deps_;
};

// The closed set of JobError.reason values, from an engine status.
const char* FailureReason(const absl::Status& status);

}  // namespace prunerd
