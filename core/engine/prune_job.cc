// Implements RunPruneJob (core/api/engine.h): the pipeline a prune job runs.
//   load → [dense eval] → calibration windows → [calibration ppl] → prune layer by layer →
//   [calibration ppl] → [pruned eval] → write the model → report.
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/api/engine.h"
#include "core/common/status_macros.h"
#include "core/engine/executor.h"
#include "core/engine/model_export.h"
#include "core/engine/model_loader.h"
#include "core/engine/perplexity.h"
#include "core/engine/torch_util.h"
#include "core/methods/registry.h"
#include "core/methods/transact.h"

namespace prunerd {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Splits [0, 1] among the job's stages in proportion to their estimated work, so `fraction`
// moves at a roughly even pace.
class StagePlan {
 public:
  void Add(const std::string& stage, double work) {
    stages_.push_back({stage, work});
    total_ += work;
  }
  // Fraction of the whole job when `stage` is `within` (0..1) done.
  double At(const std::string& stage, double within) const {
    double before = 0;
    for (const auto& [name, work] : stages_) {
      if (name == stage) return (before + work * within) / total_;
      before += work;
    }
    return 1.0;
  }

 private:
  std::vector<std::pair<std::string, double>> stages_;
  double total_ = 0;
};

int64_t ResolveSeqlen(int64_t requested, const LlamaConfig& c, const std::string& field,
                      absl::Status* error) {
  if (requested == 0) return std::min<int64_t>(2048, c.max_position_embeddings);
  if (requested > c.max_position_embeddings) {
    *error = absl::InvalidArgumentError(
        absl::StrCat(field, ": ", requested, " exceeds the model's max_position_embeddings (",
                     c.max_position_embeddings, ")"));
  }
  return requested;
}

double Ppl(const std::vector<double>& nll) {
  double s = 0;
  for (double v : nll) s += v;
  return std::exp(s / static_cast<double>(nll.size()));
}

json SpecJson(const PruneJobSpec& spec, const SparsityPattern& pattern) {
  json j;
  j["method"] = std::string(MethodName(spec.method));
  j["pattern"] = PatternName(pattern);
  j["ratio"] = pattern.effective_ratio();
  j["device"] = spec.device;
  j["dtype"] = spec.dtype;
  if (spec.method == Method::kBarber) {
    j["barber"] = {{"init", std::string(MethodName(spec.barber.init))},
                   {"tau", spec.barber.tau},
                   {"granularity", std::string(BarberGranularityName(spec.barber.granularity))},
                   {"metric", std::string(BarberMetricName(spec.barber.metric))},
                   {"retain_reconstruction", spec.barber.retain_reconstruction}};
  }
  if (spec.method == Method::kSparseGpt ||
      (spec.method == Method::kBarber && spec.barber.init == Method::kSparseGpt)) {
    j["sparsegpt"] = {{"percdamp", spec.sparsegpt.percdamp},
                      {"blocksize", spec.sparsegpt.blocksize}};
  }
  if (spec.method == Method::kTransAct) {
    const TransActOptions& t = spec.transact;
    j["transact"] = {{"attn_ratio", t.attn_ratio}, {"mlp_ratio", t.mlp_ratio},
                     {"attn_dim", t.attn_dim},     {"mlp_dim", t.mlp_dim},
                     {"shots", t.shots},           {"gqa_mode", std::string(GqaModeName(t.gqa_mode))}};
  }
  return j;
}

}  // namespace

absl::StatusOr<PruneResult> RunPruneJob(const PruneJobSpec& spec,
                                        const ProgressCallback& progress) {
  const auto job_start = Clock::now();
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  ASSIGN_OR_RETURN(at::Device device, ParseDevice(spec.device));
  if (!spec.output_dir.empty() && std::filesystem::exists(spec.output_dir) &&
      !std::filesystem::is_empty(spec.output_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat("output: ", spec.output_dir, " exists and is not empty"));
  }
  ASSIGN_OR_RETURN(LoadedModel lm, OpenModel(spec.model_path, spec.tokenizer_path));
  LlamaModel& model = lm.model;
  const LlamaConfig dense_config = model.config;
  ASSIGN_OR_RETURN(at::ScalarType dtype,
                   ResolveComputeDType(spec.dtype, dense_config.torch_dtype, device));
  SparsityPattern pattern = spec.pattern;
  if (pattern.is_nm() && spec.method != Method::kTransAct) {
    for (Proj p : kAllProjs) {
      const int64_t in = ProjShape(dense_config, p)[1];
      if (in % pattern.m != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pattern: ", PatternName(pattern), " needs every input dimension to be a multiple of ",
            pattern.m, ", but ", std::string(ProjName(p)), " has ", in, " inputs"));
      }
    }
  }

  absl::Status seq_error;
  const int64_t calib_t =
      ResolveSeqlen(spec.calibration.seqlen, dense_config, "calibration.seqlen", &seq_error);
  const int64_t eval_t = spec.evaluation ? ResolveSeqlen(spec.evaluation->seqlen, dense_config,
                                                         "evaluation.seqlen", &seq_error)
                                         : 0;
  RETURN_IF_ERROR(seq_error);

  // Data.
  ASSIGN_OR_RETURN(TokenizedCorpus calib_corpus,
                   LoadCorpus(spec.calibration.path, lm.tokenizer.get(), dense_config.vocab_size));
  ASSIGN_OR_RETURN(TokenWindows calib, SampleCalibration(calib_corpus, spec.calibration.num_samples,
                                                         calib_t, spec.calibration.seed));
  std::optional<TokenWindows> eval;
  if (spec.evaluation) {
    ASSIGN_OR_RETURN(TokenizedCorpus eval_corpus, LoadCorpus(spec.evaluation->path,
                                                             lm.tokenizer.get(),
                                                             dense_config.vocab_size));
    ASSIGN_OR_RETURN(eval, EvalWindows(eval_corpus, eval_t, spec.evaluation->max_windows));
  }
  const at::Tensor calib_tokens = WindowsTensor(calib);
  const at::Tensor eval_tokens = eval ? WindowsTensor(*eval) : at::Tensor();

  // Plan the progress fractions.
  const double calib_work = static_cast<double>(calib.windows * calib.seqlen);
  const double eval_work = eval ? static_cast<double>(eval->windows * eval->seqlen) : 0.0;
  const double method_factor = spec.method == Method::kMagnitude  ? 1.0
                               : spec.method == Method::kWanda    ? 2.0
                               : spec.method == Method::kSparseGpt ? 3.0
                               : spec.method == Method::kTransAct  ? 1.5
                                                                   : 8.0;
  StagePlan plan;
  plan.Add("load", 0.01 * calib_work + 1);
  if (eval && spec.eval_dense) plan.Add("eval_dense", eval_work);
  if (spec.eval_calibration) plan.Add("calib_dense", calib_work);
  plan.Add("prune", method_factor * calib_work);
  if (spec.eval_calibration) plan.Add("calib_pruned", calib_work);
  if (eval) plan.Add("eval_pruned", eval_work);
  if (!spec.output_dir.empty()) plan.Add("write", 0.05 * calib_work + 1);

  bool cancelled = false;
  auto report = [&](Progress p) {
    if (cancelled || !progress) return !cancelled;
    if (!progress(p)) cancelled = true;
    return !cancelled;
  };
  auto stage_progress = [&](const std::string& stage, const std::string& what) -> LayerProgress {
    return [&, stage, what](int64_t layer, int64_t layers) {
      const double within = double(layer + 1) / double(layers + 1);
      return report(Progress{.stage = stage,
                             .layer = std::min(layer, layers - 1),
                             .layers = layers,
                             .fraction = plan.At(stage, within),
                             .message = absl::StrCat(what, ": layer ", std::min(layer + 1, layers),
                                                     "/", layers)});
    };
  };
  if (!report(Progress{.stage = "load", .fraction = plan.At("load", 1.0),
                       .message = absl::StrCat("loaded ", spec.model_path)})) {
    return absl::CancelledError("cancelled");
  }

  ForwardOptions fwd{.device = device, .dtype = dtype, .batch_size = spec.batch_size};
  json rep;
  rep["spec"] = SpecJson(spec, pattern);
  rep["model"] = {{"path", spec.model_path},
                  {"format", lm.checkpoint->format() == CheckpointFormat::kLlama2c ? "llama2c"
                                                                                   : "huggingface"},
                  {"layers", dense_config.num_hidden_layers},
                  {"hidden_size", dense_config.hidden_size},
                  {"parameters", dense_config.NumParameters()},
                  {"dtype", std::string(DTypeTorchName(dense_config.torch_dtype))}};
  rep["compute_dtype"] = std::string(c10::toString(dtype));
  rep["calibration"] = {{"path", spec.calibration.path},  {"samples", calib.windows},
                        {"seqlen", calib.seqlen},         {"seed", spec.calibration.seed},
                        {"tokens", calib.windows * calib.seqlen}};
  rep["torch"] = TorchVersion();
  PruneResult result;

  // One evaluation pass, with device errors turned into a status.
  auto evaluate = [&](const at::Tensor& tokens, const std::string& stage,
                      const std::string& what) -> absl::StatusOr<double> {
    absl::StatusOr<std::vector<double>> nll;
    RETURN_IF_ERROR(TorchCall(what, [&] {
      nll = WindowNll(model, tokens, fwd, stage_progress(stage, what));
    }));
    if (!nll.ok()) return nll.status();
    const double ppl = Ppl(*nll);
    report(Progress{.stage = stage, .fraction = plan.At(stage, 1.0),
                    .message = absl::StrCat(what, ": perplexity ", ppl), .perplexity = ppl,
                    .perplexity_label = what});
    return ppl;
  };
  auto fail = [&](absl::Status s) {
    ReleaseDeviceCache(device);
    return s;
  };

  json evaluation;
  if (eval) {
    evaluation = {{"path", spec.evaluation->path},
                  {"seqlen", eval->seqlen},
                  {"windows", eval->windows}};
  }
  const auto dense_eval_start = Clock::now();
  if (eval && spec.eval_dense) {
    absl::StatusOr<double> ppl = evaluate(eval_tokens, "eval_dense", "dense");
    if (!ppl.ok()) return fail(ppl.status());
    result.ppl_dense = *ppl;
    evaluation["ppl_dense"] = *ppl;
  }
  json calibration_ppl;
  if (spec.eval_calibration) {
    absl::StatusOr<double> ppl = evaluate(calib_tokens, "calib_dense", "calibration dense");
    if (!ppl.ok()) return fail(ppl.status());
    calibration_ppl["dense"] = *ppl;
  }
  const double dense_eval_seconds = Since(dense_eval_start);

  // Prune.
  const auto prune_start = Clock::now();
  json method_details;
  json per_matrix = json::array();
  json per_layer_seconds = json::array();
  json stage_seconds = json::object();
  int64_t zeros_total = 0, weights_total = 0, peak_device = 0;
  if (spec.method == Method::kTransAct) {
    absl::StatusOr<json> details;
    RETURN_IF_ERROR(TorchCall("transact", [&] {
      details = TransActPrune(model, calib_tokens, spec.transact, fwd,
                              stage_progress("prune", "prune"));
    }));
    if (!details.ok()) return fail(details.status());
    method_details = *details;
    peak_device = DevicePeakBytes(device);
    const int64_t before = dense_config.NumParameters();
    const int64_t after = model.config.NumParameters();
    result.sparsity = 1.0 - double(after) / double(before);
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<LayerPruner> pruner, MakePruner(spec));
    absl::StatusOr<ExecutorResult> ex;
    RETURN_IF_ERROR(TorchCall("prune", [&] {
      ex = PruneLayerwise(model, calib_tokens, *pruner, pattern, fwd,
                          stage_progress("prune", "prune"));
    }));
    if (!ex.ok()) return fail(ex.status());
    for (size_t l = 0; l < ex->layers.size(); ++l) {
      const LayerRecord& r = ex->layers[l];
      per_layer_seconds.push_back(r.seconds);
      for (Proj p : kAllProjs) {
        const size_t i = static_cast<size_t>(p);
        per_matrix.push_back({{"layer", l},
                              {"proj", std::string(ProjName(p))},
                              {"zeros", r.zeros[i]},
                              {"numel", r.numel[i]},
                              {"sparsity", double(r.zeros[i]) / double(r.numel[i])}});
        zeros_total += r.zeros[i];
        weights_total += r.numel[i];
      }
    }
    for (const auto& [stage, secs] : ex->stage_seconds) stage_seconds[stage] = secs;
    peak_device = ex->peak_device_bytes;
    method_details = pruner->Report();
    result.sparsity = weights_total > 0 ? double(zeros_total) / double(weights_total) : 0.0;
  }
  const double prune_seconds = Since(prune_start);

  const auto pruned_eval_start = Clock::now();
  if (spec.eval_calibration) {
    absl::StatusOr<double> ppl = evaluate(calib_tokens, "calib_pruned", "calibration pruned");
    if (!ppl.ok()) return fail(ppl.status());
    calibration_ppl["pruned"] = *ppl;
  }
  if (eval) {
    absl::StatusOr<double> ppl = evaluate(eval_tokens, "eval_pruned", "pruned");
    if (!ppl.ok()) return fail(ppl.status());
    result.ppl_pruned = *ppl;
    evaluation["ppl_pruned"] = *ppl;
  }
  const double pruned_eval_seconds = Since(pruned_eval_start);
  ReleaseDeviceCache(device);

  // Report, then the model (the report goes inside the model directory too).
  if (spec.method == Method::kTransAct) {
    rep["structure"] = {
        {"parameters_before", dense_config.NumParameters()},
        {"parameters_after", model.config.NumParameters()},
        {"kv_cache_values_per_token_before", dense_config.KvCacheValuesPerToken()},
        {"kv_cache_values_per_token_after", model.config.KvCacheValuesPerToken()},
        {"attention_heads", model.config.num_attention_heads},
        {"kv_heads", model.config.num_key_value_heads},
        {"intermediate_size", model.config.intermediate_size},
        {"recovery_training", "none (out of scope): the model is sliced without retraining"}};
  } else {
    rep["sparsity"] = {{"total", result.sparsity},
                       {"zeros", zeros_total},
                       {"weights", weights_total},
                       {"per_matrix", per_matrix}};
  }
  if (eval) rep["evaluation"] = evaluation;
  if (spec.eval_calibration) rep["calibration"]["perplexity"] = calibration_ppl;
  rep["method_details"] = method_details;
  rep["timing"] = {{"prune_seconds", prune_seconds},
                   {"per_layer_seconds", per_layer_seconds},
                   {"stages", stage_seconds},
                   {"eval_dense_seconds", dense_eval_seconds},
                   {"eval_pruned_seconds", pruned_eval_seconds}};
  rep["memory"] = {{"peak_device_bytes", peak_device}, {"peak_host_bytes", HostPeakBytes()}};

  if (!spec.output_dir.empty()) {
    report(Progress{.stage = "write", .fraction = plan.At("write", 0.0),
                    .message = absl::StrCat("writing ", spec.output_dir)});
    const auto write_start = Clock::now();
    absl::Status s;
    RETURN_IF_ERROR(TorchCall("write", [&] { s = WriteHfModel(model, lm.tokenizer_path,
                                                              spec.output_dir); }));
    RETURN_IF_ERROR(s);
    rep["output_dir"] = spec.output_dir;
    rep["timing"]["write_seconds"] = Since(write_start);
    result.output_dir = spec.output_dir;
  }
  rep["timing"]["total_seconds"] = Since(job_start);
  result.report_json = rep.dump(2);
  if (cancelled) return absl::CancelledError("cancelled");
  report(Progress{.stage = "done", .fraction = 1.0, .message = "done"});
  return result;
}

}  // namespace prunerd
