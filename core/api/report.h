// File: report.h
//
// Reading a job's report (v1::PruneReport, proto/prunerd/v1/engine.proto): its headline figures,
// wherever they are needed (the daemon's JobResult, the CLI's summary and quality gates).
//
// Thread-safety: pure functions.
#pragma once

#include <optional>

#include "prunerd/v1/engine.pb.h"

namespace prunerd {

struct ReportSummary {
  double sparsity = 0;
  std::optional<double> perplexity_dense;   // the evaluation set, unpruned model
  std::optional<double> perplexity_pruned;  // the evaluation set, pruned model
};
ReportSummary SummarizeReport(const v1::PruneReport& report);

}  // namespace prunerd
