// File: job_store.h
//
// The durable record of jobs and their events: the interface the daemon codes against, so the
// SQLite implementation (sqlite_job_store.h) can be swapped for PostgreSQL when several
// daemons share one queue.
//
// Contract:
//  - Create() returns only once the job and its first event are durable. With a request_id
//    already present it returns the existing job (created = false) when the spec hash matches,
//    and AlreadyExists when it does not; nothing is written in either case.
//  - Update() runs a mutator on the current record inside one transaction: the job's new
//    state and the event it appends commit together or not at all. A change of state that
//    core/api/job_state.h's IsAllowedTransition forbids is refused (FailedPrecondition), and so
//    is a change of the job's id: the lifecycle (job_lifecycle.h) is the only writer, and the
//    store its backstop. Events are numbered per
//    job 1, 2, 3... without gaps (the store assigns seq, job_id, state and, if unset, time).
//    A mutator that returns an error aborts the transaction and Update returns that error.
//  - Every record carries the submission order `seq` (FIFO tie-break of the scheduler, and
//    the cursor of List()).
//
//   ASSIGN_OR_RETURN(auto r, store->Update(id, [](v1::Job& job, v1::JobEvent& ev) {
//     if (job.state() != v1::JOB_STATE_QUEUED) return absl::FailedPreconditionError("...");
//     job.set_state(v1::JOB_STATE_RUNNING);
//     ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
//     return absl::OkStatus();
//   }));
//
// Thread-safety: implementations are safe for concurrent use from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/api/job_state.h"
#include "prunerd/v1/job.pb.h"

namespace prunerd {

struct StoredJob {
  v1::Job job;
  int64_t seq = 0;  // submission order, increasing
};

struct CreateResult {
  StoredJob stored;
  bool created = false;
};

struct UpdateResult {
  v1::Job job;
  std::optional<v1::JobEvent> event;  // the event appended, if any
};

// Edits `job` and fills `event` (leave its type TYPE_UNSPECIFIED to append no event).
using JobMutator = std::function<absl::Status(v1::Job& job, v1::JobEvent& event)>;

struct ListQuery {
  std::vector<v1::JobState> states;           // empty = any
  std::map<std::string, std::string> labels;  // all must match
  int page_size = 50;
  int64_t before_seq = 0;  // only jobs submitted before this seq (0 = from the newest)
};

struct ListPage {
  std::vector<v1::Job> jobs;    // newest first
  int64_t next_before_seq = 0;  // 0 on the last page
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  virtual absl::StatusOr<CreateResult> Create(const v1::Job& job, const v1::JobEvent& first_event,
                                              const std::string& spec_hash) = 0;
  // NotFound for an unknown id.
  virtual absl::StatusOr<StoredJob> Get(const std::string& id) = 0;
  virtual absl::StatusOr<UpdateResult> Update(const std::string& id, const JobMutator& mutate) = 0;
  virtual absl::StatusOr<ListPage> List(const ListQuery& query) = 0;
  // Events with seq >= from_seq, in order, at most `limit` (0 = all).
  virtual absl::StatusOr<std::vector<v1::JobEvent>> Events(const std::string& id, int64_t from_seq,
                                                           int64_t limit = 0) = 0;
  // Jobs in `state`, in submission order (recovery and queue rebuilding).
  virtual absl::StatusOr<std::vector<StoredJob>> JobsInState(v1::JobState state) = 0;
  virtual absl::StatusOr<std::map<v1::JobState, int64_t>> CountByState() = 0;
  // Ids of terminal jobs to delete: those that ended before `ended_before`, plus all but the
  // `keep_newest` most recent terminal jobs (keep_newest < 0 = no count limit).
  virtual absl::StatusOr<std::vector<std::string>> RetentionCandidates(absl::Time ended_before,
                                                                       int64_t keep_newest) = 0;
  // Deletes the job and its events. NotFound for an unknown id.
  virtual absl::Status Delete(const std::string& id) = 0;
};

}  // namespace prunerd
