// File: scheduler.h
//
// Runs queued jobs: one worker thread per device (--devices; "cpu" when there is no GPU), each
// taking the next job by priority then submission order, running it with the JobRunner, and
// recording every step as a transition of the job lifecycle (server/job_lifecycle.h):
//   Start (QUEUED -> RUNNING on the worker's device)
//   Progress (stage, layer i/N, pass, fraction, ETA, perplexities), throttled to one per
//     `progress_interval` within a stage and layer, never throttled across them
//   Succeed (model committed, report written, artifacts hashed)
//   | Fail (error code, closed reason, message; the daemon keeps serving)
//   | FinishCancel (after SignalCancel: the progress callback returns false and the engine
//     stops at the next layer boundary)
//   | Interrupt (BeginDrain(): daemon shutdown; the job runs again at the next start).
// The scheduler holds no job state of its own beyond the in-memory queue and the running set.
//
//   Scheduler sched(opts, deps);
//   sched.Start();
//   sched.Enqueue({.id = id, .priority = 0, .seq = seq});
//   if (!sched.TakeQueued(id)) sched.SignalCancel(id);
//   sched.BeginDrain();
//   sched.WaitForWorkers(absl::Now() + absl::Seconds(20));
//
// Thread-safety: all public methods are safe to call from any thread. The queue and the
// running set are guarded by one mutex, so "a worker takes the job" and "a client cancels the
// queued job" cannot both win.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/artifact_store.h"
#include "server/clock.h"
#include "server/event_hub.h"
#include "server/job_lifecycle.h"
#include "server/job_queue.h"
#include "server/job_runner.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/spec_resolver.h"

namespace prunerd {

class Scheduler {
 public:
  struct Options {
    std::vector<std::string> devices = {"cpu"};  // one worker each (repeats allowed)
    absl::Duration progress_interval = absl::Milliseconds(500);
  };
  struct Deps {
    JobLifecycle* lifecycle;
    JobRunner* runner;
    ArtifactStore* artifacts;
    const SpecResolver* resolver;
    ServerMetrics* metrics;
    Clock* clock;
  };

  Scheduler(Options options, Deps deps);
  ~Scheduler();  // BeginDrain() and joins the workers
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Start();
  void Enqueue(QueuedJob job);

  // Removes a queued job from the queue (the caller records the cancel); false when it is not
  // queued here (a worker may have taken it).
  bool TakeQueued(const std::string& job_id);
  // Asks the worker running the job to stop at its next layer boundary; it then records the
  // cancel. False when no worker here runs it.
  bool SignalCancel(const std::string& job_id);

  // Stops handing out jobs and asks running jobs to stop at their next layer boundary; they
  // are recorded as interrupted and QUEUED.
  void BeginDrain();
  // After BeginDrain: waits for every worker to exit. False when `deadline` passed first.
  bool WaitForWorkers(absl::Time deadline);

  size_t QueueDepth() const;
  std::vector<std::string> QueuedIds() const;
  // device -> job id, for each worker running a job now.
  std::vector<std::pair<std::string, std::string>> Running() const;
  const std::vector<std::string>& devices() const { return options_.devices; }

 private:
  struct Active {
    std::string job_id;
    std::atomic<bool> cancel{false};
    std::atomic<bool> interrupt{false};
  };

  void WorkerLoop(size_t worker);
  void Execute(const QueuedJob& job, const std::string& device, Active* active);

  const Options options_;
  const Deps deps_;

  mutable absl::Mutex mu_;
  JobQueue queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Active>> active_ ABSL_GUARDED_BY(mu_);  // per worker, or null
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int live_workers_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;
};

}  // namespace prunerd
