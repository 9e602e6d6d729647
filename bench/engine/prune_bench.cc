// prune_bench: runs a list of pruning configurations through the engine's public API
// (RunPruneJob, exactly what `prunerd oneshot` and the daemon run) and prints a table of
// time, peak memory, sparsity and perplexity; --json writes every job report.
//
//   prune_bench --model DIR --calib-file valid.txt --calib-samples 128 --calib-seqlen 2048
//     --skip-calib-eval --device cuda --configs wanda/0.5,sparsegpt/0.5,barber:wanda@0.01/0.5
//     --json out.json
//
// The spec flags are prunectl submit's (core/api/spec_flags.h); a config then sets the method
// and target: METHOD[:INIT][@TAU]/PATTERN where PATTERN is a ratio (0.5) or N:M (2:4), and
// METHOD transact takes ATTN,MLP ratios as the pattern (transact/0.25,0.25).
// With an evaluation set, the dense perplexity is measured once (first config) and reused.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

absl::StatusOr<v1::JobSpec> ParseConfig(const std::string& text, v1::JobSpec base) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("config \"", text, "\": expected METHOD/PATTERN"));
  }
  std::string head = parts[0];
  if (size_t at = head.find('@'); at != std::string::npos) {
    double tau = 0;
    if (!absl::SimpleAtod(head.substr(at + 1), &tau)) {
      return absl::InvalidArgumentError(absl::StrCat("config \"", text, "\": bad tau"));
    }
    base.mutable_barber()->set_tau(tau);
    head = head.substr(0, at);
  }
  if (size_t colon = head.find(':'); colon != std::string::npos) {
    ASSIGN_OR_RETURN(v1::Method init, ParseEnum<v1::Method>(head.substr(colon + 1), "init"));
    base.mutable_barber()->set_init(init);
    head = head.substr(0, colon);
  }
  ASSIGN_OR_RETURN(v1::Method method, ParseEnum<v1::Method>(head, "method"));
  base.set_method(method);
  const std::string& pat = parts[1];
  if (method == v1::METHOD_TRANSACT) {
    std::vector<std::string> r = absl::StrSplit(pat, ',');
    double attn = 0, mlp = 0;
    if (r.size() != 2 || !absl::SimpleAtod(r[0], &attn) || !absl::SimpleAtod(r[1], &mlp)) {
      return absl::InvalidArgumentError(absl::StrCat("config \"", text,
                                                     "\": transact needs ATTN,MLP ratios"));
    }
    base.mutable_transact()->set_attn_ratio(attn);
    base.mutable_transact()->set_mlp_ratio(mlp);
  } else if (pat.find(':') != std::string::npos) {
    ASSIGN_OR_RETURN(*base.mutable_pattern(), ParseNMPattern(pat, "pattern"));
  } else {
    double ratio = 0;
    if (!absl::SimpleAtod(pat, &ratio)) {
      return absl::InvalidArgumentError(absl::StrCat("config \"", text, "\": bad ratio"));
    }
    base.set_ratio(ratio);
  }
  return base;
}

int Main(int argc, char** argv) {
  std::string configs = "magnitude/0.5,wanda/0.5", json_path, label, device = "cpu";
  ArgParser p("prune_bench", "Times pruning configurations end to end (see the file comment).");
  SpecFlags spec_flags(p);
  p.AddString("configs", &configs, "comma-separated METHOD[:INIT][@TAU]/PATTERN list");
  p.AddString("device", &device, "cpu, cuda or cuda:N");
  p.AddString("label", &label, "a name for this run in the JSON");
  p.AddString("json", &json_path, "write results here");
  if (absl::Status s = p.Parse(argc - 1, argv + 1); !s.ok()) {
    std::cerr << s << "\n";
    return 2;
  }
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  v1::JobSpec base;
  if (absl::Status s = spec_flags.ApplyTo(&base); !s.ok()) {
    std::cerr << s << "\n";
    return 2;
  }
  // The benchmark runs files, as `prunerd oneshot` resolves them.
  if (base.calibration().source_case() != v1::DataSource::kUri) {
    std::cerr << "prune_bench: --calib-file is required\n";
    return 2;
  }
  nlohmann::json results = nlohmann::json::array();
  std::optional<double> ppl_dense;
  std::printf("%-26s %-12s %9s %9s %10s %9s %10s %10s\n", "config", "pattern", "sparsity",
              "prune_s", "peak_GiB", "host_GiB", "ppl_dense", "ppl_pruned");
  // transact's "a,b" pattern contains a comma: re-join it with the next piece.
  std::vector<std::string> items;
  const std::vector<std::string> pieces = absl::StrSplit(configs, ',', absl::SkipEmpty());
  for (const std::string& piece : pieces) {
    if (!items.empty() && items.back().rfind("transact/", 0) == 0 &&
        items.back().find(',') == std::string::npos) {
      items.back() += "," + piece;
    } else {
      items.push_back(piece);
    }
  }
  for (const std::string& item : items) {
    auto spec = ParseConfig(item, base);
    if (!spec.ok()) {
      std::cerr << spec.status() << "\n";
      return 2;
    }
    if (ppl_dense) spec->set_skip_dense_eval(true);
    const auto start = std::chrono::steady_clock::now();
    auto r = RunPruneJob(*spec, RunOptions{.device = device}, nullptr);
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r.ok()) {
      std::printf("%-26s FAILED: %s\n", item.c_str(), r.status().ToString().c_str());
      results.push_back({{"config", item}, {"error", r.status().ToString()}});
      continue;
    }
    const ReportSummary summary = SummarizeReport(*r);
    if (summary.perplexity_dense) ppl_dense = summary.perplexity_dense;
    const double prune_s = r->timing().prune_seconds();
    const double peak = double(r->memory().peak_device_bytes()) / (1 << 30);
    const double host = double(r->memory().peak_host_bytes()) / (1 << 30);
    std::printf("%-26s %-12s %9.4f %9.2f %10.2f %9.2f %10.4f %10.4f\n", item.c_str(),
                PatternName(PatternOf(r->spec())).c_str(), summary.sparsity, prune_s, peak, host,
                ppl_dense.value_or(0), summary.perplexity_pruned.value_or(0));
    std::fflush(stdout);
    results.push_back({{"config", item},
                       {"wall_seconds", wall},
                       {"report", nlohmann::json::parse(ProtoToJson(*r))},
                       {"ppl_dense", ppl_dense.value_or(0)},
                       {"ppl_pruned", summary.perplexity_pruned.value_or(0)}});
  }
  if (!json_path.empty()) {
    nlohmann::json out = {{"label", label},
                          {"model", base.model()},
                          {"device", device},
                          {"spec", nlohmann::json::parse(ProtoToJson(base))},
                          {"torch", TorchVersion()},
                          {"results", results}};
    std::ofstream(json_path) << out.dump(2) << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace prunerd

int main(int argc, char** argv) { return prunerd::Main(argc, argv); }
