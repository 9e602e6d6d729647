#include "server/offline_commands.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/api/engine.h"
#include "core/common/arg_parser.h"

namespace prunerd {
namespace {

std::atomic<bool> g_interrupted{false};

void OnSigint(int) { g_interrupted.store(true); }

// Prints progress to stderr; returns false (cancel) after SIGINT.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1) {
    g_interrupted.store(false);
    std::signal(SIGINT, OnSigint);
  }
  ~ProgressPrinter() {
    if (tty_ && printed_) std::fprintf(stderr, "\n");
    std::signal(SIGINT, SIG_DFL);
  }

  bool operator()(const Progress& p) {
    if (!quiet_) {
      std::string line = absl::StrFormat("[%5.1f%%] %-12s %s", 100.0 * p.fraction, p.stage,
                                         p.message);
      if (tty_) {
        std::fprintf(stderr, "\r%-100s", line.c_str());
        if (p.perplexity) std::fprintf(stderr, "\n");
      } else {
        std::fprintf(stderr, "%s\n", line.c_str());
      }
      std::fflush(stderr);
      printed_ = true;
    }
    return !g_interrupted.load();
  }

 private:
  bool quiet_;
  bool tty_;
  bool printed_ = false;
};

int ExitCodeFor(const absl::Status& s) {
  if (s.ok()) return 0;
  switch (s.code()) {
    case absl::StatusCode::kCancelled: return 130;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnimplemented: return 2;
    default: return 1;
  }
}

int Fail(const std::string& command, const absl::Status& s) {
  std::fprintf(stderr, "prunerd %s: %s\n", command.c_str(), s.ToString().c_str());
  return ExitCodeFor(s);
}

bool WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text << "\n";
  return static_cast<bool>(out);
}

}  // namespace

int RunEvalCommand(const std::vector<std::string>& args) {
  EvalSpec spec;
  bool json_only = false, quiet = false;
  std::string report_path;
  ArgParser p("prunerd eval",
              "Perplexity of a model on a text file (WikiText-2 protocol: the whole text "
              "tokenized once with one BOS, floor(n/T) windows of T tokens, exp of the mean "
              "window NLL).");
  p.AddString("model", &spec.model_path, "Hugging Face directory or llama2.c .bin", true);
  p.AddString("data", &spec.data_path, "text, .jsonl or pre-tokenized .safetensors", true);
  p.AddString("tokenizer", &spec.tokenizer_path, "tokenizer.model (default: the model's)");
  p.AddInt("seqlen", &spec.seqlen, "tokens per window (0 = min(2048, max positions))");
  p.AddInt("max-windows", &spec.max_windows, "evaluate only the first N windows (0 = all)");
  p.AddString("device", &spec.device, "cpu, cuda or cuda:N");
  p.AddString("dtype", &spec.dtype, "float32, float16, bfloat16 or auto (the model's)");
  p.AddInt("batch-size", &spec.batch_size, "windows per forward (0 = automatic)");
  p.AddString("report", &report_path, "also write the JSON report to this file");
  p.AddBool("json", &json_only, "print only the JSON report on stdout");
  p.AddBool("quiet", &quiet, "no progress on stderr");
  if (absl::Status s = p.Parse(args); !s.ok()) return Fail("eval", s);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  ProgressPrinter printer(quiet);
  auto r = EvaluatePerplexity(spec, [&](const Progress& pr) { return printer(pr); });
  if (!r.ok()) return Fail("eval", r.status());
  nlohmann::json j = {{"model", spec.model_path},   {"data", spec.data_path},
                      {"device", spec.device},      {"dtype", spec.dtype},
                      {"seqlen", r->seqlen},        {"windows", r->windows},
                      {"corpus_tokens", r->corpus_tokens},
                      {"mean_nll", r->mean_nll},    {"perplexity", r->perplexity},
                      {"seconds", r->seconds},      {"window_nll", r->window_nll},
                      {"torch", TorchVersion()}};
  if (!report_path.empty() && !WriteText(report_path, j.dump(2))) {
    return Fail("eval", absl::InternalError(absl::StrCat("cannot write ", report_path)));
  }
  if (!json_only) {
    std::cout << absl::StrFormat("perplexity %.4f  (%d windows of %d tokens, %.1f s)\n",
                                 r->perplexity, r->windows, r->seqlen, r->seconds);
  }
  nlohmann::json brief = j;
  brief.erase("window_nll");
  std::cout << (json_only ? j : brief).dump(json_only ? 2 : -1) << "\n";
  return 0;
}

int RunOneshotCommand(const std::vector<std::string>& args) {
  PruneJobSpec spec;
  std::string method = "wanda", init = "wanda", pattern, granularity = "output1", metric = "wd";
  std::string gqa_mode = "kv_groups", eval_path, report_path;
  int64_t eval_seqlen = 0, max_windows = 0, seed = 0, shots = 1;
  bool no_eval_dense = false, no_calib_ppl = false, quiet = false;
  ArgParser p("prunerd oneshot",
              "Prune a model once, offline: calibrate, prune layer by layer, evaluate, write the "
              "pruned model as a Hugging Face directory, print the JSON report.");
  p.AddString("model", &spec.model_path, "Hugging Face directory or llama2.c .bin", true);
  p.AddString("method", &method, "magnitude, wanda, sparsegpt, barber or transact");
  p.AddDouble("ratio", &spec.pattern.ratio, "unstructured sparsity in [0, 1)");
  p.AddString("pattern", &pattern, "N:M pattern, e.g. 2:4 (overrides --ratio)");
  p.AddString("calib", &spec.calibration.path, "calibration text / .jsonl / .safetensors", true);
  p.AddInt("nsamples", &spec.calibration.num_samples, "calibration windows");
  p.AddInt("seqlen", &spec.calibration.seqlen, "calibration tokens per window (0 = auto)");
  p.AddInt("seed", &seed, "calibration sampling seed");
  p.AddString("eval", &eval_path, "evaluation text (perplexity before and after)");
  p.AddInt("eval-seqlen", &eval_seqlen, "evaluation window length (0 = auto)");
  p.AddInt("max-windows", &max_windows, "evaluate only the first N windows (0 = all)");
  p.AddBool("no-eval-dense", &no_eval_dense, "skip the dense evaluation");
  p.AddBool("no-calib-ppl", &no_calib_ppl, "skip perplexity on the calibration windows");
  p.AddString("out", &spec.output_dir, "write the pruned model here (must not exist)");
  p.AddString("tokenizer", &spec.tokenizer_path, "tokenizer.model (default: the model's)");
  p.AddString("device", &spec.device, "cpu, cuda or cuda:N");
  p.AddString("dtype", &spec.dtype, "auto, float32, float16 or bfloat16");
  p.AddInt("batch-size", &spec.batch_size, "calibration sequences per forward (0 = auto)");
  p.AddString("init", &init, "barber: initial mask (magnitude, wanda, sparsegpt)");
  p.AddDouble("tau", &spec.barber.tau, "barber: mask rebuilding ratio in [0, 1]");
  p.AddString("granularity", &granularity, "barber: output1, input1, layer or block");
  p.AddString("metric", &metric, "barber: wd, w or d");
  p.AddString("grad-precision", &spec.barber.grad_precision,
              "barber: auto, float32, tf32 or bfloat16 gradient passes");
  p.AddBool("retain-reconstruction", &spec.barber.retain_reconstruction,
            "barber with sparsegpt init: keep SparseGPT's updated weights");
  p.AddDouble("percdamp", &spec.sparsegpt.percdamp, "sparsegpt: Hessian damping");
  p.AddInt("blocksize", &spec.sparsegpt.blocksize, "sparsegpt: columns per block");
  p.AddDouble("attn-ratio", &spec.transact.attn_ratio, "transact: attention dims removed");
  p.AddDouble("mlp-ratio", &spec.transact.mlp_ratio, "transact: MLP dims removed");
  p.AddInt("attn-dim", &spec.transact.attn_dim, "transact: target attention dim (heads*d)");
  p.AddInt("mlp-dim", &spec.transact.mlp_dim, "transact: target MLP intermediate size");
  p.AddInt("shots", &shots, "transact: iterative shots");
  p.AddString("gqa-mode", &gqa_mode, "transact: kv_groups or query_heads");
  p.AddString("report", &report_path, "also write the JSON report to this file");
  p.AddBool("quiet", &quiet, "no progress on stderr");
  if (absl::Status s = p.Parse(args); !s.ok()) return Fail("oneshot", s);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  auto parsed_method = ParseMethod(method);
  if (!parsed_method.ok()) return Fail("oneshot", parsed_method.status());
  spec.method = *parsed_method;
  auto parsed_init = ParseMethod(init);
  if (!parsed_init.ok()) return Fail("oneshot", parsed_init.status());
  spec.barber.init = *parsed_init;
  if (!pattern.empty()) {
    auto nm = ParseNM(pattern);
    if (!nm.ok()) return Fail("oneshot", nm.status());
    spec.pattern = *nm;
  }
  auto g = ParseBarberGranularity(granularity);
  if (!g.ok()) return Fail("oneshot", g.status());
  spec.barber.granularity = *g;
  auto m = ParseBarberMetric(metric);
  if (!m.ok()) return Fail("oneshot", m.status());
  spec.barber.metric = *m;
  auto gm = ParseGqaMode(gqa_mode);
  if (!gm.ok()) return Fail("oneshot", gm.status());
  spec.transact.gqa_mode = *gm;
  spec.transact.shots = static_cast<int>(shots);
  spec.calibration.seed = static_cast<uint64_t>(seed);
  if (!eval_path.empty()) {
    spec.evaluation = DataSpec{.path = eval_path, .seqlen = eval_seqlen,
                               .max_windows = max_windows};
  }
  spec.eval_dense = !no_eval_dense;
  spec.eval_calibration = !no_calib_ppl;

  ProgressPrinter printer(quiet);
  auto r = RunPruneJob(spec, [&](const Progress& pr) { return printer(pr); });
  if (!r.ok()) return Fail("oneshot", r.status());
  if (!report_path.empty() && !WriteText(report_path, r->report_json)) {
    return Fail("oneshot", absl::InternalError(absl::StrCat("cannot write ", report_path)));
  }
  std::cout << r->report_json << "\n";
  if (!quiet) {
    std::fprintf(stderr, "sparsity %.4f", r->sparsity);
    if (r->ppl_pruned > 0) {
      std::fprintf(stderr, "  perplexity %.4f -> %.4f", r->ppl_dense, r->ppl_pruned);
    }
    std::fprintf(stderr, "\n");
  }
  return 0;
}

}  // namespace prunerd
