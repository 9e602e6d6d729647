#include "server/scheduler.h"

#include <exception>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/logging.h"
#include "server/proto_time.h"

namespace prunerd {

const char* FailureReason(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kCancelled:
      return "cancelled";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return "invalid_input";
    case absl::StatusCode::kResourceExhausted:
      return "out_of_memory";
    case absl::StatusCode::kUnimplemented:
      return "unsupported";
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
      return "engine_error";
    default:
      return "internal";
  }
}

namespace {

void SetError(v1::JobError* e, const absl::Status& s, const char* reason) {
  e->set_code(static_cast<int32_t>(s.code()));
  e->set_reason(reason);
  e->set_message(std::string(s.message()));
}

// Turns the engine's progress reports into persisted, throttled progress events, ETA and
// layer timings. Runs on the worker thread only.
class ProgressTracker {
 public:
  ProgressTracker(const std::string& job_id, const std::string& method, absl::Time start,
                  const Scheduler::Options& options, const Scheduler::Deps& deps,
                  std::function<void(const UpdateResult&)> publish)
      : job_id_(job_id),
        method_(method),
        start_(start),
        options_(options),
        deps_(deps),
        publish_(std::move(publish)) {}

  void OnProgress(const Progress& p) {
    const absl::Time now = deps_.clock->Now();
    // Layer timing: the time between two reports of different layers in the prune stage.
    if (p.stage == "prune") {
      if (p.layer != prune_layer_) {
        if (prune_layer_ >= 0) deps_.metrics->LayerPruned(method_, ToSeconds(now - layer_start_));
        prune_layer_ = p.layer;
        layer_start_ = now;
      }
    } else if (stage_ == "prune" && prune_layer_ >= 0) {
      deps_.metrics->LayerPruned(method_, ToSeconds(now - layer_start_));
      prune_layer_ = -1;
    }
    if (p.perplexity) {
      if (p.perplexity_label == "dense") ppl_dense_ = *p.perplexity;
      if (p.perplexity_label == "pruned") ppl_pruned_ = *p.perplexity;
    }
    const bool boundary = p.stage != stage_ || p.layer != layer_ || p.perplexity.has_value() ||
                          p.fraction >= 1.0 || !persisted_once_;
    stage_ = p.stage;
    layer_ = p.layer;
    if (!boundary && now - last_persist_ < options_.progress_interval) return;
    last_persist_ = now;
    persisted_once_ = true;

    v1::JobProgress jp;
    jp.set_stage(p.stage);
    jp.set_layer(p.layer);
    jp.set_layers(p.layers);
    jp.set_fraction(std::clamp(p.fraction, 0.0, 1.0));
    jp.set_message(p.message);
    const double elapsed = ToSeconds(now - start_);
    if (p.fraction >= 0.01 && p.fraction < 1.0 && elapsed > 0) {
      jp.set_eta_seconds(elapsed * (1.0 - p.fraction) / p.fraction);
    }
    if (ppl_dense_) jp.set_perplexity_dense(*ppl_dense_);
    if (ppl_pruned_) jp.set_perplexity_pruned(*ppl_pruned_);
    absl::StatusOr<UpdateResult> r =
        deps_.store->Update(job_id_, [&](v1::Job& job, v1::JobEvent& ev) {
          if (job.state() != v1::JOB_STATE_RUNNING) {
            return absl::FailedPreconditionError("job is no longer running");
          }
          *job.mutable_progress() = jp;
          ev.set_type(v1::JobEvent::TYPE_PROGRESS);
          *ev.mutable_progress() = jp;
          ev.set_message(p.message);
          return absl::OkStatus();
        });
    if (r.ok()) {
      publish_(*r);
    } else {
      LogWarning(absl::StrCat("job ", job_id_, ": progress not recorded: ", r.status().ToString()));
    }
  }

  void Finish() {
    if (stage_ == "prune" && prune_layer_ >= 0) {
      deps_.metrics->LayerPruned(method_, ToSeconds(deps_.clock->Now() - layer_start_));
      prune_layer_ = -1;
    }
  }

 private:
  static double ToSeconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

  const std::string job_id_;
  const std::string method_;
  const absl::Time start_;
  const Scheduler::Options& options_;
  const Scheduler::Deps& deps_;
  std::function<void(const UpdateResult&)> publish_;

  std::string stage_;
  int64_t layer_ = -1;
  int64_t prune_layer_ = -1;
  absl::Time layer_start_;
  absl::Time last_persist_ = absl::InfinitePast();
  bool persisted_once_ = false;
  std::optional<double> ppl_dense_;
  std::optional<double> ppl_pruned_;
};

}  // namespace

Scheduler::Scheduler(Options options, Deps deps) : options_(std::move(options)), deps_(deps) {
  absl::MutexLock l(&mu_);
  active_.resize(options_.devices.size());
}

Scheduler::~Scheduler() {
  BeginDrain();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void Scheduler::Start() {
  {
    absl::MutexLock l(&mu_);
    live_workers_ = static_cast<int>(options_.devices.size());
  }
  for (size_t i = 0; i < options_.devices.size(); ++i) {
    threads_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

void Scheduler::Enqueue(QueuedJob job) {
  absl::MutexLock l(&mu_);
  queue_.Push(std::move(job));
}

Scheduler::CancelResult Scheduler::Cancel(const std::string& job_id) {
  absl::MutexLock l(&mu_);
  if (queue_.Remove(job_id)) return CancelResult::kRemovedFromQueue;
  for (const auto& a : active_) {
    if (a && a->job_id == job_id) {
      a->cancel = true;
      return CancelResult::kSignalledRunning;
    }
  }
  return CancelResult::kNotActive;
}

void Scheduler::BeginDrain() {
  absl::MutexLock l(&mu_);
  draining_ = true;
  for (const auto& a : active_) {
    if (a) a->interrupt = true;
  }
}

bool Scheduler::WaitForWorkers(absl::Time deadline) {
  absl::MutexLock l(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_workers_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
}

size_t Scheduler::QueueDepth() const {
  absl::MutexLock l(&mu_);
  return queue_.size();
}

std::vector<std::string> Scheduler::QueuedIds() const {
  absl::MutexLock l(&mu_);
  return queue_.Ids();
}

std::vector<std::pair<std::string, std::string>> Scheduler::Running() const {
  absl::MutexLock l(&mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < active_.size(); ++i) {
    if (active_[i]) out.emplace_back(options_.devices[i], active_[i]->job_id);
  }
  return out;
}

void Scheduler::Publish(const UpdateResult& r) {
  if (r.event) deps_.hub->Publish(*r.event);
}

void Scheduler::WorkerLoop(size_t worker) {
  const std::string device = options_.devices[worker];
  for (;;) {
    QueuedJob job;
    std::shared_ptr<Active> active;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return draining_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (draining_) break;
      job = *queue_.Pop();
      active = std::make_shared<Active>();
      active->job_id = job.id;
      active_[worker] = active;
    }
    Execute(job, device, active.get());
    absl::MutexLock l(&mu_);
    active_[worker].reset();
  }
  absl::MutexLock l(&mu_);
  --live_workers_;
}

void Scheduler::Execute(const QueuedJob& queued, const std::string& device, Active* active) {
  const std::string& id = queued.id;
  const absl::Time start = deps_.clock->Now();

  // QUEUED -> RUNNING.
  absl::StatusOr<UpdateResult> started =
      deps_.store->Update(id, [&](v1::Job& job, v1::JobEvent& ev) {
        if (job.state() != v1::JOB_STATE_QUEUED) {
          return absl::FailedPreconditionError(
              absl::StrCat("job is ", v1::JobState_Name(job.state()), ", not queued"));
        }
        job.set_state(v1::JOB_STATE_RUNNING);
        job.set_attempt(job.attempt() + 1);
        job.set_device(device);
        job.set_cancel_requested(false);
        SetTimestamp(job.mutable_start_time(), start);
        job.clear_end_time();
        job.clear_error();
        job.clear_result();
        job.mutable_progress()->Clear();
        job.mutable_progress()->set_stage("starting");
        ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
        *ev.mutable_progress() = job.progress();
        ev.set_message(absl::StrCat("started on ", device, " (attempt ", job.attempt(), ")"));
        return absl::OkStatus();
      });
  if (!started.ok()) {
    LogWarning(absl::StrCat("job ", id, " not started: ", started.status().ToString()));
    return;
  }
  Publish(*started);
  const v1::Job& job = started->job;
  const std::string& method = job.spec().method();
  deps_.metrics->QueueWait(absl::ToDoubleSeconds(start - queued.enqueue_time));
  LogInfo(absl::StrCat("job ", id, " started on ", device, " (", method, ", attempt ",
                       job.attempt(), ")"));

  // Resolve again (files may have changed since submit), then run.
  PruneJobSpec spec;
  std::string model_dir;
  ProgressTracker tracker(id, method, start, options_, deps_,
                          [this](const UpdateResult& r) { Publish(r); });
  absl::Status setup = absl::OkStatus();
  if (absl::StatusOr<PruneJobSpec> resolved = deps_.resolver->Resolve(job.spec()); !resolved.ok()) {
    setup = resolved.status();
  } else {
    spec = *std::move(resolved);
    spec.device = device;
    if (!job.spec().skip_model_output()) {
      absl::StatusOr<std::string> dir = deps_.artifacts->PrepareModelDir(id);
      if (!dir.ok()) {
        setup = absl::InternalError(
            absl::StrCat("cannot prepare the artifact directory: ", dir.status().message()));
      } else {
        model_dir = *dir;
        spec.output_dir = model_dir;
      }
    }
  }
  absl::StatusOr<PruneResult> result = absl::UnknownError("not run");
  if (!setup.ok()) {
    result = setup;
  } else if (active->cancel || active->interrupt) {
    result = absl::CancelledError("cancelled before the run started");
  } else {
    ProgressCallback cb = [&](const Progress& p) {
      tracker.OnProgress(p);
      return !(active->cancel.load() || active->interrupt.load());
    };
    try {
      result = deps_.runner->Run(spec, cb);
    } catch (const std::exception& e) {
      result = absl::InternalError(absl::StrCat("engine threw: ", e.what()));
    } catch (...) {
      result = absl::InternalError("engine threw an unknown exception");
    }
  }
  tracker.Finish();
  const absl::Time end = deps_.clock->Now();
  const double run_seconds = absl::ToDoubleSeconds(end - start);

  // Commit artifacts of a successful run before declaring success.
  std::vector<v1::Artifact> artifacts;
  if (result.ok()) {
    absl::Status s;
    if (!model_dir.empty()) {
      const std::string written = result->output_dir.empty() ? model_dir : result->output_dir;
      s = deps_.artifacts->CommitModel(id, written);
    }
    if (s.ok()) s = deps_.artifacts->WriteReport(id, result->report_json);
    if (s.ok()) {
      absl::StatusOr<std::vector<v1::Artifact>> listed = deps_.artifacts->List(id);
      if (listed.ok()) {
        artifacts = *std::move(listed);
      } else {
        s = listed.status();
      }
    }
    if (!s.ok()) result = absl::Status(s.code(), absl::StrCat("writing artifacts: ", s.message()));
  }

  JobOutcome outcome;
  const bool engine_cancelled = !result.ok() && absl::IsCancelled(result.status());
  absl::StatusOr<UpdateResult> finished;
  if (result.ok()) {
    outcome = JobOutcome::kSucceeded;
    finished = deps_.store->Update(id, [&](v1::Job& j, v1::JobEvent& ev) {
      j.set_state(v1::JOB_STATE_SUCCEEDED);
      SetTimestamp(j.mutable_end_time(), end);
      v1::JobResult* r = j.mutable_result();
      r->set_sparsity(result->sparsity);
      if (result->ppl_dense > 0) r->set_perplexity_dense(result->ppl_dense);
      if (result->ppl_pruned > 0) r->set_perplexity_pruned(result->ppl_pruned);
      r->set_run_seconds(run_seconds);
      for (const v1::Artifact& a : artifacts) *r->add_artifacts() = a;
      r->set_report_json(result->report_json);
      v1::JobProgress* p = j.mutable_progress();
      p->set_stage("done");
      p->set_fraction(1.0);
      p->clear_eta_seconds();
      if (r->has_perplexity_dense()) p->set_perplexity_dense(r->perplexity_dense());
      if (r->has_perplexity_pruned()) p->set_perplexity_pruned(r->perplexity_pruned());
      ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
      *ev.mutable_progress() = *p;
      *ev.mutable_result() = *r;
      ev.set_message(absl::StrCat("succeeded in ", absl::FormatDuration(end - start)));
      return absl::OkStatus();
    });
    const std::string& m = method;
    if (m != "magnitude") {
      deps_.metrics->CalibrationTokens(m, spec.calibration.num_samples * spec.calibration.seqlen);
    }
  } else if (engine_cancelled && active->interrupt && !active->cancel) {
    outcome = JobOutcome::kInterrupted;
    deps_.artifacts->DiscardTemp(id).IgnoreError();
    finished = deps_.store->Update(id, [&](v1::Job& j, v1::JobEvent& ev) {
      j.set_state(v1::JOB_STATE_QUEUED);
      j.mutable_progress()->Clear();
      j.mutable_progress()->set_stage("queued");
      ev.set_type(v1::JobEvent::TYPE_INTERRUPTED);
      *ev.mutable_progress() = j.progress();
      ev.set_message("interrupted by a daemon shutdown; queued again, runs at the next start");
      return absl::OkStatus();
    });
  } else if (engine_cancelled && active->cancel) {
    outcome = JobOutcome::kCancelled;
    deps_.artifacts->DiscardTemp(id).IgnoreError();
    finished = deps_.store->Update(id, [&](v1::Job& j, v1::JobEvent& ev) {
      j.set_state(v1::JOB_STATE_CANCELLED);
      SetTimestamp(j.mutable_end_time(), end);
      j.mutable_progress()->clear_eta_seconds();
      SetError(j.mutable_error(), absl::CancelledError("cancelled while running"), "cancelled");
      ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
      *ev.mutable_error() = j.error();
      *ev.mutable_progress() = j.progress();
      ev.set_message("cancelled");
      return absl::OkStatus();
    });
  } else {
    outcome = JobOutcome::kFailed;
    deps_.artifacts->DiscardTemp(id).IgnoreError();
    const absl::Status err = result.status();
    // An engine-internal "cancelled" without a request would be a bug; report it as such.
    const char* reason = engine_cancelled ? "engine_error" : FailureReason(err);
    LogWarning(absl::StrCat("job ", id, " failed (", reason, "): ", err.ToString()));
    finished = deps_.store->Update(id, [&](v1::Job& j, v1::JobEvent& ev) {
      j.set_state(v1::JOB_STATE_FAILED);
      SetTimestamp(j.mutable_end_time(), end);
      j.mutable_progress()->clear_eta_seconds();
      SetError(j.mutable_error(), err, reason);
      ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
      *ev.mutable_error() = j.error();
      *ev.mutable_progress() = j.progress();
      ev.set_message(absl::StrCat("failed: ", err.message()));
      return absl::OkStatus();
    });
  }
  if (!finished.ok()) {
    // The record stays RUNNING; recovery at the next start deals with it.
    LogError(absl::StrCat("job ", id,
                          ": cannot record the end of the run: ", finished.status().ToString()));
    return;
  }
  Publish(*finished);
  deps_.metrics->JobFinished(method, outcome, run_seconds);
  LogInfo(absl::StrCat("job ", id, " ", JobOutcomeName(outcome), " after ",
                       absl::FormatDuration(end - start)));
  if (IsTerminal(finished->job.state())) WriteEventLog(id);
}

void Scheduler::WriteEventLog(const std::string& job_id) {
  absl::StatusOr<std::vector<v1::JobEvent>> events = deps_.store->Events(job_id, 1);
  absl::Status s = events.status();
  if (s.ok()) s = deps_.artifacts->WriteEventLog(job_id, *events);
  absl::StatusOr<v1::Artifact> described = absl::UnknownError("not written");
  if (s.ok()) {
    described = deps_.artifacts->Describe(job_id, kEventsArtifact);
    s = described.status();
  }
  if (s.ok()) {
    s = deps_.store
            ->Update(job_id,
                     [&](v1::Job& j, v1::JobEvent&) {
                       v1::JobResult* r = j.mutable_result();
                       for (v1::Artifact& b : *r->mutable_artifacts()) {
                         if (b.name() == described->name()) {
                           b = *described;
                           return absl::OkStatus();
                         }
                       }
                       *r->add_artifacts() = *described;
                       return absl::OkStatus();
                     })
            .status();
  }
  if (!s.ok()) {
    LogWarning(absl::StrCat("job ", job_id, ": event log not written: ", s.ToString()));
  }
}

}  // namespace prunerd
