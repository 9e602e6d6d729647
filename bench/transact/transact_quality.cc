// transact_quality: what TransAct does to a model's size and perplexity, without retraining.
// Runs RunPruneJob (what `prunerd oneshot --method transact` and the daemon run) for every
// combination of ratio and GQA mode, and prints parameters, KV-cache values per token and
// perplexity before/after; the dense perplexity is measured once. --json writes the reports.
//
//   transact_quality --model shared/data/models/prose16M
//     --calib shared/data/text/wikitext-2/valid.txt
//     --eval shared/data/text/wikitext-2-raw/wiki.test.raw
//     --ratios 0.25,0.5 --modes kv_groups,query_heads --json quality.json
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
#include "core/common/arg_parser.h"
#include "core/common/status_macros.h"

namespace prunerd {
namespace {

using json = nlohmann::json;

absl::Status Run(PruneJobSpec base, const std::string& ratios, const std::string& modes,
                 const std::string& json_path) {
  std::vector<double> rs;
  for (absl::string_view s : absl::StrSplit(ratios, ',', absl::SkipEmpty())) {
    double r;
    if (!absl::SimpleAtod(s, &r)) return absl::InvalidArgumentError(absl::StrCat("--ratios: ", s));
    rs.push_back(r);
  }
  std::vector<GqaMode> ms;
  for (absl::string_view s : absl::StrSplit(modes, ',', absl::SkipEmpty())) {
    ASSIGN_OR_RETURN(GqaMode m, ParseGqaMode(std::string(s)));
    ms.push_back(m);
  }
  base.method = Method::kTransAct;
  base.eval_calibration = false;
  json reports = json::array();
  double ppl_dense = 0;
  std::printf("%-12s %5s | %5s %4s %6s | %10s %9s | %9s %9s | %7s\n", "mode", "ratio", "heads",
              "kv", "d_ff", "params", "KV/token", "ppl dense", "ppl", "seconds");
  bool first = true;
  for (GqaMode m : ms) {
    for (double r : rs) {
      PruneJobSpec spec = base;
      spec.transact.attn_ratio = r;
      spec.transact.mlp_ratio = r;
      spec.transact.gqa_mode = m;
      spec.eval_dense = first;
      ASSIGN_OR_RETURN(PruneResult res, RunPruneJob(spec, nullptr));
      if (first) ppl_dense = res.ppl_dense;
      json rep = json::parse(res.report_json);
      const json& st = rep["structure"];
      if (first) {
        std::printf("%-12s %5s | %5s %4s %6s | %10lld %9lld | %9.3f %9s |\n", "dense", "-", "-",
                    "-", "-", (long long)st["parameters_before"].get<int64_t>(),
                    (long long)st["kv_cache_values_per_token_before"].get<int64_t>(), ppl_dense,
                    "-");
      }
      std::printf("%-12s %5.2f | %5lld %4lld %6lld | %10lld %9lld | %9.3f %9.3f | %7.1f\n",
                  std::string(GqaModeName(m)).c_str(), r,
                  (long long)st["attention_heads"].get<int64_t>(),
                  (long long)st["kv_heads"].get<int64_t>(),
                  (long long)st["intermediate_size"].get<int64_t>(),
                  (long long)st["parameters_after"].get<int64_t>(),
                  (long long)st["kv_cache_values_per_token_after"].get<int64_t>(), ppl_dense,
                  res.ppl_pruned, rep["timing"]["total_seconds"].get<double>());
      std::fflush(stdout);
      rep["ppl_dense_reused"] = ppl_dense;
      reports.push_back(std::move(rep));
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
  prunerd::PruneJobSpec spec;
  spec.evaluation = prunerd::DataSpec{};
  std::string ratios = "0.25,0.5", modes = "kv_groups,query_heads", json_path;
  int64_t seed = 0;
  prunerd::ArgParser p("transact_quality", "TransAct size and perplexity before/after.");
  p.AddString("model", &spec.model_path, "model directory or llama2.c .bin", true);
  p.AddString("calib", &spec.calibration.path, "calibration text", true);
  p.AddInt("nsamples", &spec.calibration.num_samples, "calibration windows");
  p.AddInt("seqlen", &spec.calibration.seqlen, "calibration window length (0 = auto)");
  p.AddInt("seed", &seed, "calibration seed");
  p.AddString("eval", &spec.evaluation->path, "evaluation text", true);
  p.AddInt("eval-seqlen", &spec.evaluation->seqlen, "evaluation window length (0 = auto)");
  p.AddInt("max-windows", &spec.evaluation->max_windows, "evaluation windows (0 = all)");
  p.AddString("ratios", &ratios, "comma-separated fractions removed (attention and MLP)");
  p.AddString("modes", &modes, "comma-separated GQA modes: kv_groups, query_heads");
  p.AddString("device", &spec.device, "cpu, cuda or cuda:N");
  p.AddString("dtype", &spec.dtype, "auto, float32, float16 or bfloat16");
  p.AddInt("batch-size", &spec.batch_size, "sequences per forward (0 = auto)");
  p.AddString("json", &json_path, "write the job reports here");
  absl::Status s = p.Parse(argc - 1, argv + 1);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  spec.calibration.seed = static_cast<uint64_t>(seed);
  if (s.ok()) s = prunerd::Run(spec, ratios, modes, json_path);
  if (!s.ok()) {
    std::cerr << "transact_quality: " << s << "\n";
    return 1;
  }
  return 0;
}
