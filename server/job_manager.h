// File: job_manager.h
//
// The daemon's job operations, independent of gRPC: submit (validate, record durably, queue),
// get, list (filter + opaque page token), cancel, watch (replay + live), read artifacts,
// server info, start-up recovery, retention and drain. The gRPC service (grpc_service.h) is a
// thin adapter over this class, so the logic is unit-tested without a network.
//
// Every change of a job record is a transition of the lifecycle (server/job_lifecycle.h), which
// this class owns with the event hub and the scheduler.
//
// Recovery (Recover(), before Start() and before the daemon reports ready): jobs left RUNNING
// by a daemon that died are re-queued with a TYPE_INTERRUPTED event, or FAILED with reason
// "daemon_restart" once they have been caught in more than max_crash_retries crashes, or
// CANCELLED when a cancel had been requested; then every QUEUED job is handed to the scheduler
// in priority/submission order.
//
//   JobManager jobs(options, deps);
//   RETURN_IF_ERROR(jobs.Recover());
//   jobs.Start();
//   ASSIGN_OR_RETURN(SubmitResult r, jobs.Submit(request, principal));
//
// Thread-safety: all methods are safe to call concurrently from RPC threads.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "prunerd/v1/service.pb.h"
#include "server/artifact_store.h"
#include "server/auth.h"
#include "server/clock.h"
#include "server/dataset_registry.h"
#include "server/event_hub.h"
#include "server/job_lifecycle.h"
#include "server/job_runner.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/spec_resolver.h"

namespace prunerd {

class JobManager {
 public:
  struct Options {
    std::vector<std::string> devices = {"cpu"};
    int max_crash_retries = 1;
    absl::Duration progress_interval = absl::Milliseconds(500);
    // Retention of finished jobs (record and artifacts): older than max_age, or beyond the
    // newest max_jobs. Zero / negative = no limit. Runs at Start() and every interval.
    absl::Duration retention_max_age = absl::ZeroDuration();
    int64_t retention_max_jobs = -1;
    absl::Duration retention_interval = absl::Minutes(10);
    // Watch: how often a waiting stream re-checks the client and the store.
    absl::Duration watch_poll = absl::Milliseconds(250);
    size_t artifact_chunk_bytes = 1 << 20;
    std::string version;
    std::string commit;
  };
  struct Deps {
    JobStore* store;
    JobRunner* runner;
    ArtifactStore* artifacts;
    const SpecResolver* resolver;
    const DatasetRegistry* datasets;
    ServerMetrics* metrics;
    Clock* clock;
  };

  JobManager(Options options, Deps deps);
  ~JobManager();

  absl::Status Recover();
  void Start();

  struct SubmitResult {
    v1::Job job;
    bool created = false;
  };
  absl::StatusOr<SubmitResult> Submit(const v1::SubmitJobRequest& request, const Principal& caller);
  absl::StatusOr<v1::Job> Get(const std::string& job_id);
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request);
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id, const Principal& caller);

  // Streams events: stored ones with seq >= from_seq, then live ones, until the terminal
  // event (OK). `send` returns false when the client went away (-> Cancelled);
  // `client_cancelled` is polled while waiting. On shutdown, sends a TYPE_STREAM_END event
  // and returns Unavailable.
  absl::Status Watch(const std::string& job_id, int64_t from_seq,
                     const std::function<bool(const v1::JobEvent&)>& send,
                     const std::function<bool()>& client_cancelled);

  // Streams an artifact from `offset` in chunks; the first chunk carries size and sha256.
  absl::Status ReadArtifact(const v1::GetArtifactRequest& request,
                            const std::function<bool(const v1::ArtifactChunk&)>& send);

  v1::ServerInfo Info();

  // Deletes expired finished jobs; returns how many.
  int RunRetention();

  // Refuse submits (UNAVAILABLE) and ask running jobs to stop at their next layer boundary
  // (they are recorded as interrupted and QUEUED).
  void BeginDrain();
  // Ends every WatchJob stream with a TYPE_STREAM_END event (call after the workers stopped,
  // so watchers see the interruption first).
  void EndStreams();
  bool draining() const { return draining_.load(); }
  bool WaitForWorkers(absl::Time deadline);
  // After a WaitForWorkers that timed out: records every job still running as interrupted
  // (QUEUED, not counted as a crash), so the exit that follows loses no job. The workers'
  // later writes for those jobs are refused by the lifecycle.
  void InterruptRunning(const std::string& why);

  int64_t watch_streams() const { return watch_streams_.load(); }
  Scheduler& scheduler() { return scheduler_; }
  JobEventHub& hub() { return hub_; }
  JobLifecycle& lifecycle() { return lifecycle_; }

 private:
  void RetentionLoop();
  std::string NewJobId();

  const Options options_;
  const Deps deps_;
  JobEventHub hub_;
  JobLifecycle lifecycle_;
  Scheduler scheduler_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> watch_streams_{0};
  absl::Time start_time_;
  absl::Notification stop_retention_;
  std::thread retention_thread_;
};

}  // namespace prunerd
