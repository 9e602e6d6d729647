// File: spec_resolver.h
//
// From a client's spec to the one the engine runs: checks every field (core/api/job_spec.h's
// SpecViolations, all of them at once), then resolves the model, tokenizer and data paths inside
// the configured roots, or dataset names through the registry, and returns the spec with those
// paths in place (DataSource.uri). Errors name the field by its proto path:
//
//   InvalidArgument  "spec.method: is required (...)", "spec.ratio: must be in [0, 1), got 1.5",
//                    "spec.model: path is outside the configured model roots: /etc/passwd"
//   NotFound         "spec.model: no such file inside the model roots: missing.bin",
//                    "spec.calibration.dataset: unknown dataset \"x\" (registered: ...)"
//
// The daemon resolves at submit (to reject bad specs before anything is queued) and again when
// the job starts (files may have moved in between); `prunerd oneshot` resolves with an
// unconfined policy (root "/") and, optionally, a dataset directory.
//
//   SpecResolver resolver(&roots, &datasets);
//   ASSIGN_OR_RETURN(v1::JobSpec resolved, resolver.Resolve(request.spec()));
//
// Thread-safety: const methods are safe to call concurrently (the roots and registry are).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "prunerd/v1/spec.pb.h"
#include "server/dataset_registry.h"
#include "server/path_policy.h"

namespace prunerd {

class SpecResolver {
 public:
  SpecResolver(const PathPolicy* roots, const DatasetRegistry* datasets)
      : roots_(roots), datasets_(datasets) {}

  absl::StatusOr<v1::JobSpec> Resolve(const v1::JobSpec& spec) const;

 private:
  absl::Status ResolveData(const std::string& field, v1::DataSource* d) const;

  const PathPolicy* roots_;
  const DatasetRegistry* datasets_;
};

// A stable hash of the spec (deterministic serialization, map entries sorted), to tell a retry
// with the same request_id from a different request reusing it.
std::string SpecHash(const v1::JobSpec& spec);

}  // namespace prunerd
