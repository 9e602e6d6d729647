// prune_bench: runs a list of pruning configurations through the engine's public API
// (RunPruneJob, exactly what `prunerd oneshot` and the daemon run) and prints a table of
// time, peak memory, sparsity and perplexity; --json writes every job report.
//
//   prune_bench --model DIR --calib valid.txt --nsamples 128 --seqlen 2048 --device cuda
//     --configs wanda/0.5,sparsegpt/0.5,barber:wanda@0.01/0.5 --json out.json
//
// A config is METHOD[:INIT][@TAU]/PATTERN where PATTERN is a ratio (0.5) or N:M (2:4), and
// METHOD transact takes ATTN,MLP ratios as the pattern (transact/0.25,0.25).
// With --eval, the dense perplexity is measured once (first config) and reused.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/api/engine.h"
#include "core/common/arg_parser.h"

namespace prunerd {
namespace {

absl::StatusOr<PruneJobSpec> ParseConfig(const std::string& text, PruneJobSpec base) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("config \"", text, "\": expected METHOD/PATTERN"));
  }
  std::string head = parts[0];
  if (size_t at = head.find('@'); at != std::string::npos) {
    if (!absl::SimpleAtod(head.substr(at + 1), &base.barber.tau)) {
      return absl::InvalidArgumentError(absl::StrCat("config \"", text, "\": bad tau"));
    }
    head = head.substr(0, at);
  }
  if (size_t colon = head.find(':'); colon != std::string::npos) {
    auto init = ParseMethod(head.substr(colon + 1));
    if (!init.ok()) return init.status();
    base.barber.init = *init;
    head = head.substr(0, colon);
  }
  auto method = ParseMethod(head);
  if (!method.ok()) return method.status();
  base.method = *method;
  const std::string& pat = parts[1];
  if (base.method == Method::kTransAct) {
    std::vector<std::string> r = absl::StrSplit(pat, ',');
    if (r.size() != 2 || !absl::SimpleAtod(r[0], &base.transact.attn_ratio) ||
        !absl::SimpleAtod(r[1], &base.transact.mlp_ratio)) {
      return absl::InvalidArgumentError(absl::StrCat("config \"", text,
                                                     "\": transact needs ATTN,MLP ratios"));
    }
  } else if (pat.find(':') != std::string::npos) {
    auto nm = ParseNM(pat);
    if (!nm.ok()) return nm.status();
    base.pattern = *nm;
  } else if (!absl::SimpleAtod(pat, &base.pattern.ratio)) {
    return absl::InvalidArgumentError(absl::StrCat("config \"", text, "\": bad ratio"));
  }
  return base;
}

int Main(int argc, char** argv) {
  PruneJobSpec base;
  std::string configs = "magnitude/0.5,wanda/0.5", eval_path, json_path, label;
  int64_t eval_seqlen = 0, max_windows = 0, seed = 0;
  bool calib_ppl = false;
  ArgParser p("prune_bench", "Times pruning configurations end to end (see the file comment).");
  p.AddString("model", &base.model_path, "model directory or llama2.c .bin", true);
  p.AddString("calib", &base.calibration.path, "calibration data", true);
  p.AddInt("nsamples", &base.calibration.num_samples, "calibration windows");
  p.AddInt("seqlen", &base.calibration.seqlen, "calibration window length (0 = auto)");
  p.AddInt("seed", &seed, "calibration seed");
  p.AddString("configs", &configs, "comma-separated METHOD[:INIT][@TAU]/PATTERN list");
  p.AddString("eval", &eval_path, "evaluation text (perplexity before/after)");
  p.AddInt("eval-seqlen", &eval_seqlen, "evaluation window length (0 = auto)");
  p.AddInt("max-windows", &max_windows, "evaluation windows (0 = all)");
  p.AddBool("calib-ppl", &calib_ppl, "also measure perplexity on the calibration windows");
  p.AddString("device", &base.device, "cpu, cuda or cuda:N");
  p.AddString("dtype", &base.dtype, "auto, float32, float16 or bfloat16");
  p.AddInt("batch-size", &base.batch_size, "sequences per forward (0 = auto)");
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
  base.calibration.seed = static_cast<uint64_t>(seed);
  base.eval_calibration = calib_ppl;
  if (!eval_path.empty()) {
    base.evaluation = DataSpec{.path = eval_path, .seqlen = eval_seqlen, .max_windows = max_windows};
  }
  nlohmann::json results = nlohmann::json::array();
  double ppl_dense = 0;
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
    spec->eval_dense = spec->evaluation.has_value() && ppl_dense == 0;
    const auto start = std::chrono::steady_clock::now();
    auto r = RunPruneJob(*spec, nullptr);
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r.ok()) {
      std::printf("%-26s FAILED: %s\n", item.c_str(), r.status().ToString().c_str());
      results.push_back({{"config", item}, {"error", r.status().ToString()}});
      continue;
    }
    if (r->ppl_dense > 0) ppl_dense = r->ppl_dense;
    nlohmann::json rep = nlohmann::json::parse(r->report_json);
    const double prune_s = rep["timing"]["prune_seconds"].get<double>();
    const double peak = rep["memory"]["peak_device_bytes"].get<double>() / (1 << 30);
    const double host = rep["memory"]["peak_host_bytes"].get<double>() / (1 << 30);
    std::printf("%-26s %-12s %9.4f %9.2f %10.2f %9.2f %10.4f %10.4f\n", item.c_str(),
                rep["spec"]["pattern"].get<std::string>().c_str(), r->sparsity, prune_s, peak,
                host, ppl_dense, r->ppl_pruned);
    std::fflush(stdout);
    results.push_back({{"config", item}, {"wall_seconds", wall}, {"report", rep},
                       {"ppl_dense", ppl_dense}, {"ppl_pruned", r->ppl_pruned}});
  }
  if (!json_path.empty()) {
    nlohmann::json out = {{"label", label},
                          {"model", base.model_path},
                          {"device", base.device},
                          {"dtype", base.dtype},
                          {"calibration", {{"path", base.calibration.path},
                                           {"nsamples", base.calibration.num_samples},
                                           {"seqlen", base.calibration.seqlen}}},
                          {"torch", TorchVersion()},
                          {"results", results}};
    std::ofstream(json_path) << out.dump(2) << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace prunerd

int main(int argc, char** argv) { return prunerd::Main(argc, argv); }
