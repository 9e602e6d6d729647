#include "client/quality_gate.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace prunerd {
namespace {

absl::StatusOr<double> ParseNumber(const std::string& flag, const std::string& text) {
  double v;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || v < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": not a non-negative number: \"", text, "\""));
  }
  return v;
}

}  // namespace

absl::StatusOr<QualityGates> ParseQualityGates(const std::string& max_ppl_increase,
                                               const std::string& max_ppl,
                                               const std::string& min_sparsity) {
  QualityGates g;
  std::string inc(absl::StripAsciiWhitespace(max_ppl_increase));
  if (!inc.empty()) {
    if (inc.back() == '%') {
      absl::StatusOr<double> v = ParseNumber("max-ppl-increase", inc.substr(0, inc.size() - 1));
      if (!v.ok()) return v.status();
      g.max_increase_relative = *v / 100.0;
    } else {
      if (!inc.empty() && inc[0] == '+') inc = inc.substr(1);
      absl::StatusOr<double> v = ParseNumber("max-ppl-increase", inc);
      if (!v.ok()) return v.status();
      g.max_increase_absolute = *v;
    }
  }
  if (!max_ppl.empty()) {
    absl::StatusOr<double> v = ParseNumber("max-ppl", max_ppl);
    if (!v.ok()) return v.status();
    g.max_ppl = *v;
  }
  if (!min_sparsity.empty()) {
    absl::StatusOr<double> v = ParseNumber("min-sparsity", min_sparsity);
    if (!v.ok()) return v.status();
    if (*v > 1) return absl::InvalidArgumentError("--min-sparsity: must be in [0, 1]");
    g.min_sparsity = *v;
  }
  return g;
}

GateReport CheckQualityGates(const QualityGates& g, const v1::JobResult& r) {
  GateReport rep;
  auto add = [&rep](bool ok, const std::string& text) {
    rep.passed = rep.passed && ok;
    rep.lines.push_back(absl::StrCat(ok ? "ok      " : "FAILED  ", text));
  };
  const bool have_dense = r.has_perplexity_dense();
  const bool have_pruned = r.has_perplexity_pruned();
  if (g.max_increase_relative || g.max_increase_absolute) {
    if (!have_dense || !have_pruned) {
      add(false,
          "perplexity increase: the job has no dense and pruned perplexity (submit with "
          "an evaluation set and without --skip-dense-eval)");
    } else {
      const double dense = r.perplexity_dense();
      const double pruned = r.perplexity_pruned();
      const double rel = (pruned - dense) / dense;
      if (g.max_increase_relative) {
        add(pruned <= dense * (1.0 + *g.max_increase_relative),
            absl::StrFormat("perplexity increase %.2f%% (%.4f -> %.4f), allowed %.2f%%", 100 * rel,
                            dense, pruned, 100 * *g.max_increase_relative));
      }
      if (g.max_increase_absolute) {
        add(pruned - dense <= *g.max_increase_absolute,
            absl::StrFormat("perplexity increase %+.4f (%.4f -> %.4f), allowed +%.4f",
                            pruned - dense, dense, pruned, *g.max_increase_absolute));
      }
    }
  }
  if (g.max_ppl) {
    if (!have_pruned) {
      add(false,
          "max perplexity: the job has no pruned perplexity (submit with an evaluation "
          "set)");
    } else {
      add(r.perplexity_pruned() <= *g.max_ppl,
          absl::StrFormat("pruned perplexity %.4f, allowed %.4f", r.perplexity_pruned(),
                          *g.max_ppl));
    }
  }
  if (g.min_sparsity) {
    add(r.sparsity() + 1e-9 >= *g.min_sparsity,
        absl::StrFormat("sparsity %.4f, required %.4f", r.sparsity(), *g.min_sparsity));
  }
  return rep;
}

}  // namespace prunerd
