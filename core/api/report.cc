#include "core/api/report.h"

namespace prunerd {

ReportSummary SummarizeReport(const v1::PruneReport& report) {
  ReportSummary s;
  s.sparsity = report.sparsity();
  for (const v1::Evaluation& e : report.evaluations()) {
    if (e.target() == v1::EVAL_TARGET_DENSE) s.perplexity_dense = e.perplexity();
    if (e.target() == v1::EVAL_TARGET_PRUNED) s.perplexity_pruned = e.perplexity();
  }
  return s;
}

}  // namespace prunerd
