// File: quality_gate.h
//
// Quality gates for CI: fail the step when the pruned model is worse than allowed.
//
//   --max-ppl-increase 10%    pruned ppl <= dense ppl * 1.10 (relative, with a % sign)
//   --max-ppl-increase 2.5    pruned ppl <= dense ppl + 2.5  (absolute, perplexity points)
//   --max-ppl 25              pruned ppl <= 25
//   --min-sparsity 0.5        achieved sparsity >= 0.5
//
// A gate that needs a number the job did not measure (no evaluation set, or
// skip_dense_eval) fails with a message saying so: a gate never passes by default.
//
//   ASSIGN_OR_RETURN(QualityGates g, ParseQualityGates("10%", "", ""));
//   GateReport r = CheckQualityGates(g, job.result());
//   if (!r.passed) ...
//
// Thread-safety: pure functions and values.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prunerd/v1/job.pb.h"

namespace prunerd {

struct QualityGates {
  std::optional<double> max_increase_relative;  // 0.10 for "10%"
  std::optional<double> max_increase_absolute;  // perplexity points
  std::optional<double> max_ppl;
  std::optional<double> min_sparsity;
  bool any() const {
    return max_increase_relative || max_increase_absolute || max_ppl || min_sparsity;
  }
};

// Empty strings mean "no gate". InvalidArgument naming the flag for malformed values.
absl::StatusOr<QualityGates> ParseQualityGates(const std::string& max_ppl_increase,
                                               const std::string& max_ppl,
                                               const std::string& min_sparsity);

struct GateReport {
  bool passed = true;
  std::vector<std::string> lines;  // one per gate: "ok ..." or "FAILED ..."
};

GateReport CheckQualityGates(const QualityGates& gates, const v1::JobResult& result);

}  // namespace prunerd
