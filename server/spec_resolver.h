// File: job_spec_mapping.h
//
// From the wire (prunerd.v1.JobSpec) to the engine (prunerd::PruneJobSpec): checks every field,
// fills the documented defaults, resolves the model, tokenizer and data paths inside the
// configured roots (or through the dataset registry), and runs the engine's own
// ValidateJobSpec. Errors name the field by its proto path:
//
//   InvalidArgument  "spec.method: unknown method \"foo\" (...)", "spec.ratio: must be in
//                    [0, 1), got 1.5", "spec.pattern: malformed N:M pattern ...",
//                    "spec.model: path is outside the configured model roots: /etc/passwd"
//   NotFound         "spec.model: no such file inside the model roots: missing.bin",
//                    "spec.calibration.dataset: unknown dataset \"x\" (registered: ...)"
//
// The result has no device and no output_dir: the scheduler sets those when a worker takes
// the job. The same resolution runs at submit (to reject bad specs before anything is queued)
// and again when the job starts (files may have moved in between).
//
//   SpecResolver resolver(&roots, &datasets);
//   ASSIGN_OR_RETURN(PruneJobSpec spec, resolver.Resolve(request.spec()));
//
// Thread-safety: const methods are safe to call concurrently (the roots and registry are).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "core/api/job_spec.h"
#include "prunerd/v1/job.pb.h"
#include "server/dataset_registry.h"
#include "server/path_policy.h"

namespace prunerd {

// Defaults for fields left at zero.
inline constexpr int64_t kDefaultCalibrationSamples = 128;
// 0 = the engine's default: min(2048, the model's max_position_embeddings).
inline constexpr int64_t kDefaultSeqlen = 0;
inline constexpr int32_t kMaxPriority = 1000;
inline constexpr int kMaxLabels = 32;

// Checks of the proto alone (no filesystem): method and option names, sparsity target,
// priority, labels. Resolve() runs it first.
absl::Status ValidateSpecShape(const v1::JobSpec& spec);

// Label keys: 1-63 characters of [a-z0-9_.-/]; values up to 256 bytes.
bool IsValidLabelKey(absl::string_view key);

class SpecResolver {
 public:
  SpecResolver(const PathPolicy* roots, const DatasetRegistry* datasets)
      : roots_(roots), datasets_(datasets) {}

  absl::StatusOr<PruneJobSpec> Resolve(const v1::JobSpec& spec) const;

 private:
  absl::StatusOr<DataSpec> ResolveData(const v1::DataSource& d, const std::string& field,
                                       bool calibration) const;

  const PathPolicy* roots_;
  const DatasetRegistry* datasets_;
};

// A stable hash of the spec (deterministic serialization, map entries sorted), to tell a retry
// with the same request_id from a different request reusing it.
std::string SpecHash(const v1::JobSpec& spec);

}  // namespace prunerd
