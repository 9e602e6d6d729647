// transact_quality: what TransAct does to a model's size and perplexity, without retraining.
// Runs RunPruneJob (what `prunerd oneshot --method transact` and the daemon run) for every
// combination of ratio and GQA mode, and prints parameters, KV-cache values per token and
// perplexity before/after; the dense perplexity is measured once. --json writes the reports.
//
//   transact_quality --model shared/data/models/prose16M
//     --calib-file shared/data/text/wikitext-2/valid.txt
//     --eval-file shared/data/text/wikitext-2-raw/wiki.test.raw
//     --ratios 0.25,0.5 --modes kv_groups,query_heads --json quality.json
//
// The spec flags are prunectl submit's (core/api/spec_flags.h).
//
// A ratio r prunes r of the attention dim and r of the MLP dim. Not a test.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/api/engine.h"
#include "core/api/job_spec.h"
#include "core/api/proto_json.h"
#include "core/api/report.h"
#include "core/api/spec_flags.h"
#include "core/common/arg_parser.h"
#include "core/common/status_macros.h"

namespace prunerd {
namespace {

using json = nlohmann::json;

absl::Status Run(v1::JobSpec base, const std::string& device, const std::string& ratios,
                 const std::string& modes, const std::string& json_path) {
  std::vector<double> rs;
  for (absl::string_view s : absl::StrSplit(ratios, ',', absl::SkipEmpty())) {
    double r;
    if (!absl::SimpleAtod(s, &r)) return absl::InvalidArgumentError(absl::StrCat("--ratios: ", s));
    rs.push_back(r);
  }
  std::vector<v1::GqaMode> ms;
  for (absl::string_view s : absl::StrSplit(modes, ',', absl::SkipEmpty())) {
    ASSIGN_OR_RETURN(v1::GqaMode m, ParseEnum<v1::GqaMode>(s, "--modes"));
    ms.push_back(m);
  }
  base.set_method(v1::METHOD_TRANSACT);
  base.set_skip_calibration_eval(true);
  json reports = json::array();
  double ppl_dense = 0;
  std::printf("%-12s %5s | %5s %4s %6s | %10s %9s | %9s %9s | %7s\n", "mode", "ratio", "heads",
              "kv", "d_ff", "params", "KV/token", "ppl dense", "ppl", "seconds");
  bool first = true;
  for (v1::GqaMode m : ms) {
    for (double r : rs) {
      v1::JobSpec spec = base;
      spec.mutable_transact()->set_attn_ratio(r);
      spec.mutable_transact()->set_mlp_ratio(r);
      spec.mutable_transact()->set_gqa_mode(m);
      spec.set_skip_dense_eval(!first);
      ASSIGN_OR_RETURN(v1::PruneReport rep,
                       RunPruneJob(spec, RunOptions{.device = device}, nullptr));
      const ReportSummary summary = SummarizeReport(rep);
      if (first) ppl_dense = summary.perplexity_dense.value_or(0);
      const v1::TransActReport& t = rep.transact();
      if (first) {
        std::printf("%-12s %5s | %5s %4s %6s | %10lld %9lld | %9.3f %9s |\n", "dense", "-", "-",
                    "-", "-", (long long)t.dense().parameters(),
                    (long long)t.dense().kv_cache_values_per_token(), ppl_dense, "-");
      }
      std::printf("%-12s %5.2f | %5lld %4lld %6lld | %10lld %9lld | %9.3f %9.3f | %7.1f\n",
                  EnumName(m).c_str(), r, (long long)t.pruned().attention_heads(),
                  (long long)t.pruned().kv_heads(), (long long)t.pruned().intermediate_size(),
                  (long long)t.pruned().parameters(),
                  (long long)t.pruned().kv_cache_values_per_token(), ppl_dense,
                  summary.perplexity_pruned.value_or(0), rep.timing().total_seconds());
      std::fflush(stdout);
      json j = json::parse(ProtoToJson(rep));
      j["ppl_dense_reused"] = ppl_dense;
      reports.push_back(std::move(j));
      first = false;
    }
  }
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << reports.dump(2) << "\n";
    if (!f) return absl::InternalError(absl::StrCat("cannot write ", json_path));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace prunerd

int main(int argc, char** argv) {
  std::string ratios = "0.25,0.5", modes = "kv_groups,query_heads", json_path, device = "cpu";
  prunerd::ArgParser p("transact_quality", "TransAct size and perplexity before/after.");
  prunerd::SpecFlags spec_flags(p);
  p.AddString("ratios", &ratios, "comma-separated fractions removed (attention and MLP)");
  p.AddString("modes", &modes, "comma-separated GQA modes: kv_groups, query_heads");
  p.AddString("device", &device, "cpu, cuda or cuda:N");
  p.AddString("json", &json_path, "write the job reports here");
  absl::Status s = p.Parse(argc - 1, argv + 1);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  prunerd::v1::JobSpec spec;
  spec.set_method(prunerd::v1::METHOD_TRANSACT);
  if (s.ok()) s = spec_flags.ApplyTo(&spec);
  if (s.ok() && !spec.has_evaluation()) s = absl::InvalidArgumentError("--eval-file is required");
  if (s.ok()) s = prunerd::Run(spec, device, ratios, modes, json_path);
  if (!s.ok()) {
    std::cerr << "transact_quality: " << s << "\n";
    return 1;
  }
  return 0;
}
