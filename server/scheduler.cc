#include "server/scheduler.h"

#include <exception>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/api/job_spec.h"
#include "core/api/job_state.h"
#include "core/api/report.h"
#include "server/logging.h"
#include "server/proto_time.h"

namespace prunerd {

namespace {

// Turns the engine's progress reports into persisted, throttled progress events, ETA and
// layer timings. Runs on the worker thread only.
class ProgressTracker {
 public:
  ProgressTracker(const std::string& job_id, v1::Method method, absl::Time start,
                  const Scheduler::Options& options, const Scheduler::Deps& deps)
      : job_id_(job_id), method_(method), start_(start), options_(options), deps_(deps) {}

  void OnProgress(const v1::EngineProgress& p) {
    const absl::Time now = deps_.clock->Now();
    // Layer timing: the time between two reports of different layers in the prune stage.
    const int64_t step = p.pass() * (p.layers() + 1) + p.layer();
    if (p.stage() == v1::STAGE_PRUNE) {
      if (step != prune_step_) {
        if (prune_step_ >= 0) deps_.metrics->LayerPruned(method_, ToSeconds(now - layer_start_));
        prune_step_ = step;
        layer_start_ = now;
      }
    } else if (stage_ == v1::STAGE_PRUNE && prune_step_ >= 0) {
      deps_.metrics->LayerPruned(method_, ToSeconds(now - layer_start_));
      prune_step_ = -1;
    }
    if (p.has_evaluation()) {
      if (p.evaluation().target() == v1::EVAL_TARGET_DENSE)
        ppl_dense_ = p.evaluation().perplexity();
      if (p.evaluation().target() == v1::EVAL_TARGET_PRUNED) {
        ppl_pruned_ = p.evaluation().perplexity();
      }
    }
    const bool boundary = p.stage() != stage_ || step != step_ || p.has_evaluation() ||
                          p.fraction() >= 1.0 || !persisted_once_;
    stage_ = p.stage();
    step_ = step;
    if (!boundary && now - last_persist_ < options_.progress_interval) return;
    last_persist_ = now;
    persisted_once_ = true;

    v1::JobProgress jp;
    jp.set_stage(p.stage());
    jp.set_layer(p.layer());
    jp.set_layers(p.layers());
    jp.set_pass(p.pass());
    jp.set_passes(p.passes());
    jp.set_fraction(std::clamp(p.fraction(), 0.0, 1.0));
    jp.set_message(p.message());
    const double elapsed = ToSeconds(now - start_);
    if (p.fraction() >= 0.01 && p.fraction() < 1.0 && elapsed > 0) {
      jp.set_eta_seconds(elapsed * (1.0 - p.fraction()) / p.fraction());
    }
    if (ppl_dense_) jp.set_perplexity_dense(*ppl_dense_);
    if (ppl_pruned_) jp.set_perplexity_pruned(*ppl_pruned_);
    absl::StatusOr<v1::Job> r = deps_.lifecycle->Progress(job_id_, jp);
    if (!r.ok()) {
      LogWarning(absl::StrCat("job ", job_id_, ": progress not recorded: ", r.status().ToString()));
    }
  }

  void Finish() {
    if (stage_ == v1::STAGE_PRUNE && prune_step_ >= 0) {
      deps_.metrics->LayerPruned(method_, ToSeconds(deps_.clock->Now() - layer_start_));
      prune_step_ = -1;
    }
  }

 private:
  static double ToSeconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

  const std::string job_id_;
  const v1::Method method_;
  const absl::Time start_;
  const Scheduler::Options& options_;
  const Scheduler::Deps& deps_;

  v1::Stage stage_ = v1::STAGE_UNSPECIFIED;
  int64_t step_ = -1;
  int64_t prune_step_ = -1;
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

bool Scheduler::TakeQueued(const std::string& job_id) {
  absl::MutexLock l(&mu_);
  return queue_.Remove(job_id);
}

bool Scheduler::SignalCancel(const std::string& job_id) {
  absl::MutexLock l(&mu_);
  for (const auto& a : active_) {
    if (a && a->job_id == job_id) {
      a->cancel = true;
      return true;
    }
  }
  return false;
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

  absl::StatusOr<v1::Job> started = deps_.lifecycle->Start(id, device);
  if (!started.ok()) {
    LogWarning(absl::StrCat("job ", id, " not started: ", started.status().ToString()));
    return;
  }
  if (started->state() != v1::JOB_STATE_RUNNING) {
    LogInfo(absl::StrCat("job ", id, " ", StateName(started->state()), " before it started"));
    return;
  }
  const v1::Job& job = *started;
  const v1::Method method = job.spec().method();
  deps_.metrics->QueueWait(absl::ToDoubleSeconds(start - queued.enqueue_time));
  LogInfo(absl::StrCat("job ", id, " started on ", device, " (", EnumName(method), ", attempt ",
                       job.attempt(), ")"));

  // Resolve again (files may have changed since submit), then run.
  v1::JobSpec spec;
  RunOptions run{.device = device};
  std::string model_dir;
  ProgressTracker tracker(id, method, start, options_, deps_);
  absl::Status setup = absl::OkStatus();
  if (absl::StatusOr<v1::JobSpec> resolved = deps_.resolver->Resolve(job.spec()); !resolved.ok()) {
    setup = resolved.status();
  } else {
    spec = *std::move(resolved);
    if (!job.spec().skip_model_output()) {
      absl::StatusOr<std::string> dir = deps_.artifacts->PrepareModelDir(id);
      if (!dir.ok()) {
        setup = absl::InternalError(
            absl::StrCat("cannot prepare the artifact directory: ", dir.status().message()));
      } else {
        model_dir = *dir;
        run.output_dir = model_dir;
      }
    }
  }
  absl::StatusOr<v1::PruneReport> report = absl::UnknownError("not run");
  if (!setup.ok()) {
    report = setup;
  } else if (active->cancel || active->interrupt) {
    report = absl::CancelledError("cancelled before the run started");
  } else {
    ProgressCallback cb = [&](const v1::EngineProgress& p) {
      tracker.OnProgress(p);
      return !(active->cancel.load() || active->interrupt.load());
    };
    try {
      report = deps_.runner->Run(spec, run, cb);
    } catch (const std::exception& e) {
      report = absl::InternalError(absl::StrCat("engine threw: ", e.what()));
    } catch (...) {
      report = absl::InternalError("engine threw an unknown exception");
    }
  }
  tracker.Finish();
  const absl::Time end = deps_.clock->Now();

  // Commit artifacts of a successful run before declaring success.
  v1::JobResult result;
  if (report.ok()) {
    absl::Status s;
    if (!model_dir.empty()) {
      const std::string written = report->output_dir().empty() ? model_dir : report->output_dir();
      s = deps_.artifacts->CommitModel(id, written);
      // The report names where the model is now, the committed artifact directory.
      report->set_output_dir(absl::StrCat(deps_.artifacts->JobDir(id), "/", kModelArtifactDir));
    }
    if (s.ok()) s = deps_.artifacts->WriteReport(id, *report);
    if (s.ok()) {
      absl::StatusOr<std::vector<v1::Artifact>> listed = deps_.artifacts->List(id);
      if (listed.ok()) {
        for (v1::Artifact& a : *listed) *result.add_artifacts() = std::move(a);
      } else {
        s = listed.status();
      }
    }
    if (!s.ok()) report = absl::Status(s.code(), absl::StrCat("writing artifacts: ", s.message()));
  }

  const bool engine_cancelled = !report.ok() && absl::IsCancelled(report.status());
  absl::StatusOr<v1::Job> finished;
  if (report.ok()) {
    const ReportSummary summary = SummarizeReport(*report);
    result.set_sparsity(summary.sparsity);
    if (summary.perplexity_dense) result.set_perplexity_dense(*summary.perplexity_dense);
    if (summary.perplexity_pruned) result.set_perplexity_pruned(*summary.perplexity_pruned);
    result.set_run_seconds(absl::ToDoubleSeconds(end - start));
    deps_.metrics->CalibrationTokens(method, report->calibration_tokens_used());
    *result.mutable_report() = *std::move(report);
    finished = deps_.lifecycle->Succeed(id, std::move(result));
  } else if (engine_cancelled && active->interrupt && !active->cancel) {
    deps_.artifacts->DiscardTemp(id).IgnoreError();
    finished = deps_.lifecycle->Interrupt(
        id, "interrupted by a daemon shutdown; queued again, runs at the next start");
  } else if (engine_cancelled && active->cancel) {
    deps_.artifacts->DiscardTemp(id).IgnoreError();
    finished = deps_.lifecycle->FinishCancel(id);
  } else {
    deps_.artifacts->DiscardTemp(id).IgnoreError();
    const absl::Status err = report.status();
    // An engine-internal "cancelled" without a request would be a bug; report it as such.
    const char* reason = engine_cancelled ? "engine_error" : FailureReason(err);
    LogWarning(absl::StrCat("job ", id, " failed (", reason, "): ", err.ToString()));
    finished = deps_.lifecycle->Fail(id, err, reason);
  }
  if (!finished.ok()) {
    // The record stays RUNNING (or was taken over); recovery at the next start deals with it.
    LogError(absl::StrCat("job ", id,
                          ": cannot record the end of the run: ", finished.status().ToString()));
    return;
  }
  LogInfo(absl::StrCat("job ", id, " ", StateName(finished->state()), " after ",
                       absl::FormatDuration(end - start)));
}

}  // namespace prunerd
