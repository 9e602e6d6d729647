#include "server/offline_commands.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/api/engine.h"
#include "core/api/job_spec.h"
#include "core/api/proto_json.h"
#include "core/api/report.h"
#include "core/api/spec_flags.h"
#include "core/common/arg_parser.h"
#include "server/dataset_registry.h"
#include "server/path_policy.h"
#include "server/spec_resolver.h"

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

  bool operator()(const v1::EngineProgress& p) {
    if (!quiet_) {
      std::string line = absl::StrFormat("[%5.1f%%] %-12s %s", 100.0 * p.fraction(),
                                         EnumName(p.stage()), p.message());
      if (tty_) {
        std::fprintf(stderr, "\r%-100s", line.c_str());
        if (p.has_evaluation()) std::fprintf(stderr, "\n");
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
    case absl::StatusCode::kCancelled:
      return 130;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnimplemented:
      return 2;
    default:
      return 1;
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
  std::string dtype = "float32";
  p.AddString("dtype", &dtype, absl::StrCat(EnumChoices<v1::DType>(), " (auto: the model's)"));
  p.AddInt("batch-size", &spec.batch_size, "windows per forward (0 = automatic)");
  p.AddString("report", &report_path, "also write the JSON report to this file");
  p.AddBool("json", &json_only, "print only the JSON report on stdout");
  p.AddBool("quiet", &quiet, "no progress on stderr");
  if (absl::Status s = p.Parse(args); !s.ok()) return Fail("eval", s);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  absl::StatusOr<v1::DType> parsed_dtype = ParseEnum<v1::DType>(dtype, "--dtype");
  if (!parsed_dtype.ok()) return Fail("eval", parsed_dtype.status());
  spec.dtype = *parsed_dtype;
  ProgressPrinter printer(quiet);
  auto r = EvaluatePerplexity(spec, [&](const v1::EngineProgress& pr) { return printer(pr); });
  if (!r.ok()) return Fail("eval", r.status());
  nlohmann::json j = {{"model", spec.model_path},
                      {"data", spec.data_path},
                      {"device", spec.device},
                      {"dtype", EnumName(spec.dtype)},
                      {"seqlen", r->seqlen},
                      {"windows", r->windows},
                      {"corpus_tokens", r->corpus_tokens},
                      {"mean_nll", r->mean_nll},
                      {"perplexity", r->perplexity},
                      {"seconds", r->seconds},
                      {"window_nll", r->window_nll},
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

// Relative paths of an offline spec are relative to the working directory.
absl::Status Absolutize(std::string* path) {
  if (path->empty() || path->front() == '/' || path->rfind("file://", 0) == 0) {
    return absl::OkStatus();
  }
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(*path, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(*path, ": ", ec.message()));
  *path = abs.string();
  return absl::OkStatus();
}

int RunOneshotCommand(const std::vector<std::string>& args) {
  std::string out_dir, device = "cpu", dataset_dir, report_path;
  bool quiet = false;
  ArgParser p("prunerd oneshot",
              "Prune a model once, offline: calibrate, prune layer by layer, evaluate, write the "
              "pruned model as a Hugging Face directory, print the JSON report. The spec flags "
              "are prunectl submit's.");
  SpecFlags spec_flags(p);
  p.AddString("out", &out_dir, "write the pruned model here (must not exist or be empty)");
  p.AddString("device", &device, "cpu, cuda or cuda:N");
  p.AddString("dataset-dir", &dataset_dir,
              "a directory of named datasets, for --calib-dataset / --eval-dataset");
  p.AddString("report", &report_path, "also write the JSON report to this file");
  p.AddBool("quiet", &quiet, "no progress on stderr");
  if (absl::Status s = p.Parse(args); !s.ok()) return Fail("oneshot", s);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  v1::JobSpec spec;
  if (absl::Status s = spec_flags.ApplyTo(&spec); !s.ok()) return Fail("oneshot", s);
  for (std::string* path : {spec.mutable_model(), spec.mutable_tokenizer()}) {
    if (absl::Status s = Absolutize(path); !s.ok()) return Fail("oneshot", s);
  }
  for (bool calibration : {true, false}) {
    if (!(calibration ? spec.has_calibration() : spec.has_evaluation())) continue;
    v1::DataSource* d = calibration ? spec.mutable_calibration() : spec.mutable_evaluation();
    if (d->source_case() != v1::DataSource::kUri) continue;
    if (absl::Status s = Absolutize(d->mutable_uri()); !s.ok()) return Fail("oneshot", s);
  }
  // The daemon's resolver, unconfined: every path resolves, datasets from --dataset-dir.
  absl::StatusOr<PathPolicy> anywhere = PathPolicy::Create({"/"});
  if (!anywhere.ok()) return Fail("oneshot", anywhere.status());
  DatasetRegistry datasets(dataset_dir);
  SpecResolver resolver(&*anywhere, &datasets);
  absl::StatusOr<v1::JobSpec> resolved = resolver.Resolve(spec);
  if (!resolved.ok()) return Fail("oneshot", resolved.status());
  if (spec.skip_model_output()) out_dir.clear();

  ProgressPrinter printer(quiet);
  RunOptions run{.device = device, .output_dir = out_dir};
  auto r = RunPruneJob(*resolved, run, [&](const v1::EngineProgress& pr) { return printer(pr); });
  if (!r.ok()) return Fail("oneshot", r.status());
  const std::string json = ProtoToJson(*r, {.pretty = true, .with_defaults = true});
  if (!report_path.empty() && !WriteText(report_path, json)) {
    return Fail("oneshot", absl::InternalError(absl::StrCat("cannot write ", report_path)));
  }
  std::cout << json << "\n";
  if (!quiet) {
    const ReportSummary summary = SummarizeReport(*r);
    std::fprintf(stderr, "sparsity %.4f", summary.sparsity);
    if (summary.perplexity_pruned) {
      std::fprintf(stderr, "  perplexity %.4f -> %.4f", summary.perplexity_dense.value_or(0),
                   *summary.perplexity_pruned);
    }
    std::fprintf(stderr, "\n");
  }
  return 0;
}

}  // namespace prunerd
