// File: metrics.h
//
// Every Prometheus metric the daemon exports, declared once here (names, help, label names,
// buckets), on a prometheus-cpp core Registry rendered by the HTTP endpoint with
// TextSerializer. Naming follows Prometheus conventions: "prunerd_" prefix, base units
// (_seconds, _bytes), _total on counters, _info for build metadata, and no job-id label
// (per-job numbers live in the job record, not in Prometheus).
//
//   prunerd_build_info{version,commit}                 gauge, always 1
//   prunerd_jobs{state}                                gauge, jobs in the store by state
//   prunerd_jobs_submitted_total{method}               counter
//   prunerd_jobs_finished_total{method,outcome}        counter; outcome: succeeded, failed,
//                                                      cancelled, interrupted
//   prunerd_queue_wait_seconds                         histogram, submit -> start
//   prunerd_job_duration_seconds{method}               histogram, start -> end of a run
//   prunerd_layer_duration_seconds{method}             histogram, one decoder layer pruned
//   prunerd_calibration_tokens_total{method}           counter, calibration tokens processed
//   prunerd_gpu_memory_used_bytes{device}              gauge, allocator bytes per CUDA device
//   prunerd_watch_streams                              gauge, open WatchJob streams
//
// Gauges that mirror state elsewhere (jobs by state, GPU memory, watch streams) are refreshed
// from callbacks when the registry is rendered, so they are exact at scrape time.
//
//   ServerMetrics m("0.1.0", "abc123");
//   m.JobSubmitted(v1::METHOD_WANDA);
//   std::string text = m.Render();
//
// Thread-safety: all methods are safe to call from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prunerd/v1/job.pb.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace prunerd {

// Label names, declared once.
namespace metric_label {
inline constexpr char kMethod[] = "method";
inline constexpr char kOutcome[] = "outcome";
inline constexpr char kState[] = "state";
inline constexpr char kDevice[] = "device";
inline constexpr char kVersion[] = "version";
inline constexpr char kCommit[] = "commit";
}  // namespace metric_label

// The closed set of job outcomes.
enum class JobOutcome { kSucceeded, kFailed, kCancelled, kInterrupted };
const char* JobOutcomeName(JobOutcome o);
// "queued", "running", ... for the state label.
const char* JobStateLabel(v1::JobState s);

class ServerMetrics {
 public:
  struct Sources {
    std::function<std::map<v1::JobState, int64_t>()> jobs_by_state;
    // (device, bytes) for each CUDA device.
    std::function<std::vector<std::pair<std::string, int64_t>>()> gpu_memory;
    std::function<int64_t()> watch_streams;
  };

  ServerMetrics(const std::string& version, const std::string& commit);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  void SetSources(Sources sources);

  void JobSubmitted(v1::Method method);
  void JobFinished(v1::Method method, JobOutcome outcome, double run_seconds);
  void QueueWait(double seconds);
  void LayerPruned(v1::Method method, double seconds);
  void CalibrationTokens(v1::Method method, int64_t tokens);

  // Refreshes the mirrored gauges and renders the Prometheus text format (0.0.4).
  std::string Render();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>* build_info_;
  prometheus::Family<prometheus::Gauge>* jobs_;
  prometheus::Family<prometheus::Counter>* submitted_;
  prometheus::Family<prometheus::Counter>* finished_;
  prometheus::Family<prometheus::Histogram>* queue_wait_;
  prometheus::Family<prometheus::Histogram>* job_duration_;
  prometheus::Family<prometheus::Histogram>* layer_duration_;
  prometheus::Family<prometheus::Counter>* calibration_tokens_;
  prometheus::Family<prometheus::Gauge>* gpu_memory_;
  prometheus::Family<prometheus::Gauge>* watch_streams_;
  prometheus::Histogram* queue_wait_hist_;

  absl::Mutex mu_;
  Sources sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace prunerd
