#include "server/job_lifecycle.h"

#include "absl/strings/str_cat.h"
#include "core/api/job_spec.h"
#include "core/api/job_state.h"
#include "core/common/status_macros.h"
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

absl::Status NotIn(const v1::Job& j, const char* what) {
  return absl::FailedPreconditionError(
      absl::StrCat("job ", j.id(), " is ", StateName(j.state()), "; cannot ", what));
}

void SetError(v1::JobError* e, absl::StatusCode code, const std::string& reason,
              const std::string& message) {
  e->set_code(static_cast<int32_t>(code));
  e->set_reason(reason);
  e->set_message(message);
}

// The event of a state change, carrying the job's progress (and error or result).
void StateEvent(const v1::Job& j, const std::string& message, v1::JobEvent* ev) {
  ev->set_type(v1::JobEvent::TYPE_STATE_CHANGED);
  *ev->mutable_progress() = j.progress();
  if (j.has_error()) *ev->mutable_error() = j.error();
  if (j.state() == v1::JOB_STATE_SUCCEEDED) *ev->mutable_result() = j.result();
  ev->set_message(message);
}

void QueuedProgress(v1::Job* j) {
  j->mutable_progress()->Clear();
  j->mutable_progress()->set_stage(v1::STAGE_QUEUED);
}

JobOutcome OutcomeOf(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_SUCCEEDED:
      return JobOutcome::kSucceeded;
    case v1::JOB_STATE_CANCELLED:
      return JobOutcome::kCancelled;
    default:
      return JobOutcome::kFailed;
  }
}

}  // namespace

absl::StatusOr<v1::Job> JobLifecycle::Transition(const std::string& id, const JobMutator& mutate) {
  v1::JobState before = v1::JOB_STATE_UNSPECIFIED;
  ASSIGN_OR_RETURN(UpdateResult r, deps_.store->Update(id, [&](v1::Job& j, v1::JobEvent& ev) {
    before = j.state();
    return mutate(j, ev);
  }));
  if (r.event) deps_.hub->Publish(*r.event);
  if (IsTerminal(r.job.state()) && !IsTerminal(before)) {
    double run_seconds = -1;
    if (before == v1::JOB_STATE_RUNNING && r.job.has_start_time() && r.job.has_end_time()) {
      run_seconds = absl::ToDoubleSeconds(FromTimestamp(r.job.end_time()) -
                                          FromTimestamp(r.job.start_time()));
    }
    deps_.metrics->JobFinished(r.job.spec().method(), OutcomeOf(r.job.state()), run_seconds);
    OnTerminal(r.job);
  }
  return std::move(r.job);
}

void JobLifecycle::OnTerminal(const v1::Job& job) { WriteEventLog(job.id()); }

void JobLifecycle::WriteEventLog(const std::string& id) {
  absl::StatusOr<std::vector<v1::JobEvent>> events = deps_.store->Events(id, 1);
  absl::Status s = events.status();
  if (s.ok()) s = deps_.artifacts->WriteEventLog(id, *events);
  absl::StatusOr<v1::Artifact> described = absl::UnknownError("not written");
  if (s.ok()) {
    described = deps_.artifacts->Describe(id, kEventsArtifact);
    s = described.status();
  }
  if (s.ok()) {
    // Terminal -> the same terminal state: the artifact list gains the log, no event.
    s = deps_.store
            ->Update(id,
                     [&](v1::Job& j, v1::JobEvent&) {
                       if (!IsTerminal(j.state())) return NotIn(j, "attach its event log");
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
  if (!s.ok()) LogWarning(absl::StrCat("job ", id, ": event log not written: ", s.ToString()));
}

absl::StatusOr<CreateResult> JobLifecycle::Queue(v1::Job job, const std::string& message,
                                                 const std::string& spec_hash) {
  job.set_state(v1::JOB_STATE_QUEUED);
  QueuedProgress(&job);
  v1::JobEvent ev;
  ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
  *ev.mutable_progress() = job.progress();
  ev.set_message(message);
  SetTimestamp(ev.mutable_time(), deps_.clock->Now());
  ASSIGN_OR_RETURN(CreateResult r, deps_.store->Create(job, ev, spec_hash));
  if (r.created) {
    v1::JobEvent stored = ev;
    stored.set_seq(1);
    stored.set_job_id(r.stored.job.id());
    stored.set_state(v1::JOB_STATE_QUEUED);
    deps_.hub->Publish(stored);
    deps_.metrics->JobSubmitted(job.spec().method());
  }
  return r;
}

absl::StatusOr<v1::Job> JobLifecycle::Start(const std::string& id, const std::string& device) {
  const absl::Time now = deps_.clock->Now();
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (j.state() != v1::JOB_STATE_QUEUED) return NotIn(j, "start");
    if (j.cancel_requested()) {
      j.set_state(v1::JOB_STATE_CANCELLED);
      SetTimestamp(j.mutable_end_time(), now);
      j.mutable_progress()->clear_eta_seconds();
      SetError(j.mutable_error(), absl::StatusCode::kCancelled, "cancelled",
               "cancelled before it started");
      StateEvent(j, "cancelled before it started", &ev);
      return absl::OkStatus();
    }
    j.set_state(v1::JOB_STATE_RUNNING);
    j.set_attempt(j.attempt() + 1);
    j.set_device(device);
    SetTimestamp(j.mutable_start_time(), now);
    j.clear_end_time();
    j.clear_error();
    j.clear_result();
    j.mutable_progress()->Clear();
    j.mutable_progress()->set_stage(v1::STAGE_STARTING);
    StateEvent(j, absl::StrCat("started on ", device, " (attempt ", j.attempt(), ")"), &ev);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Job> JobLifecycle::Progress(const std::string& id,
                                               const v1::JobProgress& progress) {
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (j.state() != v1::JOB_STATE_RUNNING) return NotIn(j, "record progress");
    *j.mutable_progress() = progress;
    ev.set_type(v1::JobEvent::TYPE_PROGRESS);
    *ev.mutable_progress() = progress;
    ev.set_message(progress.message());
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Job> JobLifecycle::RequestCancel(const std::string& id, const std::string& who) {
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (IsTerminal(j.state())) return NotIn(j, "be cancelled");
    if (j.cancel_requested()) return absl::OkStatus();  // once is enough; no second event
    j.set_cancel_requested(true);
    ev.set_type(v1::JobEvent::TYPE_PROGRESS);
    *ev.mutable_progress() = j.progress();
    ev.set_message(
        absl::StrCat("cancel requested by ", who, "; stopping at the next layer boundary"));
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Job> JobLifecycle::CancelQueued(const std::string& id, const std::string& who) {
  const absl::Time now = deps_.clock->Now();
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (j.state() != v1::JOB_STATE_QUEUED) return NotIn(j, "be cancelled while queued");
    j.set_state(v1::JOB_STATE_CANCELLED);
    SetTimestamp(j.mutable_end_time(), now);
    const std::string message = absl::StrCat("cancelled by ", who, " while queued");
    SetError(j.mutable_error(), absl::StatusCode::kCancelled, "cancelled", message);
    StateEvent(j, message, &ev);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Job> JobLifecycle::FailQueued(const std::string& id, const absl::Status& error,
                                                 const std::string& reason) {
  const absl::Time now = deps_.clock->Now();
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (j.state() != v1::JOB_STATE_QUEUED) return NotIn(j, "fail before it started");
    j.set_state(v1::JOB_STATE_FAILED);
    SetTimestamp(j.mutable_end_time(), now);
    SetError(j.mutable_error(), error.code(), reason, std::string(error.message()));
    StateEvent(j, absl::StrCat("failed: ", error.message()), &ev);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Job> JobLifecycle::FinishCancel(const std::string& id) {
  const absl::Time now = deps_.clock->Now();
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (j.state() != v1::JOB_STATE_RUNNING) return NotIn(j, "end cancelled");
    j.set_state(v1::JOB_STATE_CANCELLED);
    SetTimestamp(j.mutable_end_time(), now);
    j.mutable_progress()->clear_eta_seconds();
    SetError(j.mutable_error(), absl::StatusCode::kCancelled, "cancelled",
             "cancelled while running");
    StateEvent(j, "cancelled", &ev);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Job> JobLifecycle::Succeed(const std::string& id, v1::JobResult result) {
  const absl::Time now = deps_.clock->Now();
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (j.state() != v1::JOB_STATE_RUNNING) return NotIn(j, "succeed");
    j.set_state(v1::JOB_STATE_SUCCEEDED);
    SetTimestamp(j.mutable_end_time(), now);
    *j.mutable_result() = result;
    v1::JobProgress* p = j.mutable_progress();
    p->set_stage(v1::STAGE_DONE);
    p->set_fraction(1.0);
    p->clear_eta_seconds();
    if (result.has_perplexity_dense()) p->set_perplexity_dense(result.perplexity_dense());
    if (result.has_perplexity_pruned()) p->set_perplexity_pruned(result.perplexity_pruned());
    StateEvent(
        j, absl::StrCat("succeeded in ", absl::FormatDuration(now - FromTimestamp(j.start_time()))),
        &ev);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Job> JobLifecycle::Fail(const std::string& id, const absl::Status& error,
                                           const std::string& reason) {
  const absl::Time now = deps_.clock->Now();
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (j.state() != v1::JOB_STATE_RUNNING) return NotIn(j, "fail");
    j.set_state(v1::JOB_STATE_FAILED);
    SetTimestamp(j.mutable_end_time(), now);
    j.mutable_progress()->clear_eta_seconds();
    SetError(j.mutable_error(), error.code(), reason, std::string(error.message()));
    StateEvent(j, absl::StrCat("failed: ", error.message()), &ev);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Job> JobLifecycle::Interrupt(const std::string& id, const std::string& why) {
  double run_seconds = -1;
  const absl::Time now = deps_.clock->Now();
  absl::StatusOr<v1::Job> r = Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (j.state() != v1::JOB_STATE_RUNNING) return NotIn(j, "be interrupted");
    if (j.has_start_time())
      run_seconds = absl::ToDoubleSeconds(now - FromTimestamp(j.start_time()));
    j.set_state(v1::JOB_STATE_QUEUED);
    QueuedProgress(&j);
    ev.set_type(v1::JobEvent::TYPE_INTERRUPTED);
    *ev.mutable_progress() = j.progress();
    ev.set_message(why);
    return absl::OkStatus();
  });
  if (r.ok()) deps_.metrics->JobFinished(r->spec().method(), JobOutcome::kInterrupted, run_seconds);
  return r;
}

absl::StatusOr<v1::Job> JobLifecycle::RecoverCrashed(const std::string& id, int max_crash_retries) {
  const absl::Time now = deps_.clock->Now();
  return Transition(id, [&](v1::Job& j, v1::JobEvent& ev) {
    if (IsTerminal(j.state())) return NotIn(j, "be recovered");
    if (j.cancel_requested()) {
      j.set_state(v1::JOB_STATE_CANCELLED);
      SetTimestamp(j.mutable_end_time(), now);
      j.mutable_progress()->clear_eta_seconds();
      const std::string message = "cancelled: the cancel was requested before the daemon stopped";
      SetError(j.mutable_error(), absl::StatusCode::kCancelled, "cancelled", message);
      StateEvent(j, message, &ev);
      return absl::OkStatus();
    }
    if (j.state() != v1::JOB_STATE_RUNNING) return absl::OkStatus();  // queued: nothing to do
    const std::string stage = EnumName(j.progress().stage());
    j.set_crash_recoveries(j.crash_recoveries() + 1);
    if (j.crash_recoveries() > max_crash_retries) {
      j.set_state(v1::JOB_STATE_FAILED);
      SetTimestamp(j.mutable_end_time(), now);
      j.mutable_progress()->clear_eta_seconds();
      const std::string message =
          absl::StrCat("the daemon stopped unexpectedly while this job was running (",
                       j.crash_recoveries(), " time(s), on ", j.device(), ", stage \"", stage,
                       "\"); not retried again (--max-crash-retries=", max_crash_retries, ")");
      SetError(j.mutable_error(), absl::StatusCode::kAborted, "daemon_restart", message);
      StateEvent(j, absl::StrCat("failed: ", message), &ev);
      return absl::OkStatus();
    }
    j.set_state(v1::JOB_STATE_QUEUED);
    QueuedProgress(&j);
    ev.set_type(v1::JobEvent::TYPE_INTERRUPTED);
    *ev.mutable_progress() = j.progress();
    ev.set_message(
        absl::StrCat("the daemon stopped unexpectedly while this job was running (stage \"", stage,
                     "\"); queued again (crash ", j.crash_recoveries(), " of at most ",
                     max_crash_retries + 1, ")"));
    return absl::OkStatus();
  });
}

}  // namespace prunerd
