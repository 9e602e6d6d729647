#include "server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "core/api/job_spec.h"

namespace prunerd {
namespace {

using prometheus::Histogram;

const Histogram::BucketBoundaries& QueueWaitBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400};
  return *b;
}
const Histogram::BucketBoundaries& JobDurationBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 57600, 86400};
  return *b;
}
const Histogram::BucketBoundaries& LayerDurationBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,  2,
                                                         5,     10,    30,   60,   120, 300, 600};
  return *b;
}

const char* const kMethods[] = {"magnitude", "wanda", "sparsegpt", "barber", "transact"};
const JobOutcome kOutcomes[] = {JobOutcome::kSucceeded, JobOutcome::kFailed, JobOutcome::kCancelled,
                                JobOutcome::kInterrupted};
const v1::JobState kStates[] = {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING,
                                v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED,
                                v1::JOB_STATE_CANCELLED};

}  // namespace

const char* JobOutcomeName(JobOutcome o) {
  switch (o) {
    case JobOutcome::kSucceeded:
      return "succeeded";
    case JobOutcome::kFailed:
      return "failed";
    case JobOutcome::kCancelled:
      return "cancelled";
    case JobOutcome::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

const char* JobStateLabel(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_QUEUED:
      return "queued";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

ServerMetrics::ServerMetrics(const std::string& version, const std::string& commit)
    : registry_(std::make_shared<prometheus::Registry>()) {
  namespace p = prometheus;
  using namespace metric_label;
  build_info_ = &p::BuildGauge()
                     .Name("prunerd_build_info")
                     .Help("Build information of the running prunerd; always 1.")
                     .Register(*registry_);
  build_info_->Add({{kVersion, version}, {kCommit, commit}}).Set(1);
  jobs_ = &p::BuildGauge()
               .Name("prunerd_jobs")
               .Help("Jobs in the job store, by state.")
               .Register(*registry_);
  submitted_ = &p::BuildCounter()
                    .Name("prunerd_jobs_submitted_total")
                    .Help("Jobs accepted by SubmitJob (idempotent retries not counted).")
                    .Register(*registry_);
  finished_ = &p::BuildCounter()
                   .Name("prunerd_jobs_finished_total")
                   .Help(
                       "Job runs that ended, by method and outcome (succeeded, failed, "
                       "cancelled, interrupted).")
                   .Register(*registry_);
  queue_wait_ = &p::BuildHistogram()
                     .Name("prunerd_queue_wait_seconds")
                     .Help("Time from submission (or re-queueing) to the start of a run.")
                     .Register(*registry_);
  job_duration_ = &p::BuildHistogram()
                       .Name("prunerd_job_duration_seconds")
                       .Help("Wall time of one run of a job, start to end.")
                       .Register(*registry_);
  layer_duration_ = &p::BuildHistogram()
                         .Name("prunerd_layer_duration_seconds")
                         .Help("Time to prune one decoder layer (statistics, mask, rewrite).")
                         .Register(*registry_);
  calibration_tokens_ = &p::BuildCounter()
                             .Name("prunerd_calibration_tokens_total")
                             .Help("Calibration tokens processed by finished runs.")
                             .Register(*registry_);
  gpu_memory_ = &p::BuildGauge()
                     .Name("prunerd_gpu_memory_used_bytes")
                     .Help("Bytes held by the daemon's allocator on each CUDA device.")
                     .Register(*registry_);
  watch_streams_ = &p::BuildGauge()
                        .Name("prunerd_watch_streams")
                        .Help("Open WatchJob streams.")
                        .Register(*registry_);
  queue_wait_hist_ = &queue_wait_->Add({}, QueueWaitBuckets());
  watch_streams_->Add({});
  // Known label values start at zero so rates work from the first scrape.
  for (const char* m : kMethods) {
    submitted_->Add({{kMethod, m}});
    for (JobOutcome o : kOutcomes) finished_->Add({{kMethod, m}, {kOutcome, JobOutcomeName(o)}});
  }
  for (v1::JobState s : kStates) jobs_->Add({{kState, JobStateLabel(s)}});
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::SetSources(Sources sources) {
  absl::MutexLock l(&mu_);
  sources_ = std::move(sources);
}

void ServerMetrics::JobSubmitted(v1::Method m) {
  submitted_->Add({{metric_label::kMethod, EnumName(m)}}).Increment();
}

void ServerMetrics::JobFinished(v1::Method m, JobOutcome outcome, double run_seconds) {
  const std::string method = EnumName(m);
  finished_
      ->Add({{metric_label::kMethod, method}, {metric_label::kOutcome, JobOutcomeName(outcome)}})
      .Increment();
  if (run_seconds >= 0) {
    job_duration_->Add({{metric_label::kMethod, method}}, JobDurationBuckets())
        .Observe(run_seconds);
  }
}

void ServerMetrics::QueueWait(double seconds) { queue_wait_hist_->Observe(seconds); }

void ServerMetrics::LayerPruned(v1::Method m, double seconds) {
  layer_duration_->Add({{metric_label::kMethod, EnumName(m)}}, LayerDurationBuckets())
      .Observe(seconds);
}

void ServerMetrics::CalibrationTokens(v1::Method m, int64_t tokens) {
  if (tokens <= 0) return;
  calibration_tokens_->Add({{metric_label::kMethod, EnumName(m)}})
      .Increment(static_cast<double>(tokens));
}

std::string ServerMetrics::Render() {
  {
    absl::MutexLock l(&mu_);
    if (sources_.jobs_by_state) {
      std::map<v1::JobState, int64_t> counts = sources_.jobs_by_state();
      for (v1::JobState s : kStates) {
        auto it = counts.find(s);
        jobs_->Add({{metric_label::kState, JobStateLabel(s)}})
            .Set(it == counts.end() ? 0.0 : static_cast<double>(it->second));
      }
    }
    if (sources_.gpu_memory) {
      for (const auto& [device, bytes] : sources_.gpu_memory()) {
        gpu_memory_->Add({{metric_label::kDevice, device}}).Set(static_cast<double>(bytes));
      }
    }
    if (sources_.watch_streams) {
      watch_streams_->Add({}).Set(static_cast<double>(sources_.watch_streams()));
    }
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace prunerd
