// Implements RunPruneJob (core/api/engine.h): the pipeline a prune job runs.
//   load → [dense eval] → calibration windows → [calibration ppl] → prune layer by layer →
//   [calibration ppl] → [pruned eval] → write the model → report (v1::PruneReport).
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/api/engine.h"
#include "core/api/job_spec.h"
#include "core/common/build_info.h"
#include "core/common/status_macros.h"
#include "core/engine/executor.h"
#include "core/engine/model_export.h"
#include "core/engine/model_loader.h"
#include "core/engine/perplexity.h"
#include "core/engine/torch_util.h"
#include "core/io/file_digests.h"
#include "core/io/sha256.h"
#include "core/methods/registry.h"
#include "core/methods/transact.h"

namespace prunerd {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Splits [0, 1] among the job's stages in proportion to their estimated work, so `fraction`
// moves at a roughly even pace.
class StagePlan {
 public:
  void Add(v1::Stage stage, double work) {
    stages_.push_back({stage, work});
    total_ += work;
  }
  // Fraction of the whole job when `stage` is `within` (0..1) done.
  double At(v1::Stage stage, double within) const {
    double before = 0;
    for (const auto& [s, work] : stages_) {
      if (s == stage) return (before + work * within) / total_;
      before += work;
    }
    return 1.0;
  }

 private:
  std::vector<std::pair<v1::Stage, double>> stages_;
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

v1::DType ProtoDType(DType d) {
  switch (d) {
    case DType::kF32:
      return v1::DTYPE_FLOAT32;
    case DType::kF16:
      return v1::DTYPE_FLOAT16;
    case DType::kBF16:
      return v1::DTYPE_BFLOAT16;
    default:
      return v1::DTYPE_AUTO;
  }
}

v1::DType ProtoDType(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return v1::DTYPE_FLOAT32;
    case at::kHalf:
      return v1::DTYPE_FLOAT16;
    case at::kBFloat16:
      return v1::DTYPE_BFLOAT16;
    default:
      return v1::DTYPE_AUTO;
  }
}

void SetDigest(const FileDigest& d, v1::FileDigest* out) {
  out->set_path(d.path);
  out->set_size_bytes(d.size_bytes);
  out->set_sha256(d.sha256);
}

// The engine reads files: dataset names must have been resolved by the caller.
absl::Status CheckResolved(const v1::DataSource& d, const char* field) {
  if (d.source_case() != v1::DataSource::kUri) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": the engine reads files; the dataset \"", d.dataset(),
        "\" was not resolved to one (the daemon and prunerd oneshot resolve names through "
        "their dataset directory)"));
  }
  return absl::OkStatus();
}

void FillDataInfo(const TokenWindows& w, uint64_t seed, const FileDigest& file, v1::DataInfo* out) {
  SetDigest(file, out->mutable_file());
  out->set_windows(w.windows);
  out->set_seqlen(w.seqlen);
  out->set_seed(seed);
  out->set_tokens(w.windows * w.seqlen);
  out->set_tokens_sha256(Sha256Hex(absl::string_view(reinterpret_cast<const char*>(w.ids.data()),
                                                     w.ids.size() * sizeof(int32_t))));
}

std::string ModelType(const Checkpoint& ckpt) {
  if (ckpt.format() == CheckpointFormat::kLlama2c) return "llama";
  nlohmann::json j = nlohmann::json::parse(ckpt.config_json(), nullptr, false);
  if (j.is_object() && j.contains("model_type") && j["model_type"].is_string()) {
    return j["model_type"].get<std::string>();
  }
  return "";
}

}  // namespace

absl::StatusOr<v1::PruneReport> RunPruneJob(const v1::JobSpec& input, const RunOptions& options,
                                            const ProgressCallback& progress) {
  const auto job_start = Clock::now();
  const v1::JobSpec spec = WithDefaults(input);
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  RETURN_IF_ERROR(CheckResolved(spec.calibration(), "calibration"));
  if (spec.has_evaluation()) RETURN_IF_ERROR(CheckResolved(spec.evaluation(), "evaluation"));
  const v1::Method method = spec.method();
  ASSIGN_OR_RETURN(at::Device device, ParseDevice(options.device));
  const std::string& output_dir = options.output_dir;
  if (!output_dir.empty() && std::filesystem::exists(output_dir) &&
      !std::filesystem::is_empty(output_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat("output: ", output_dir, " exists and is not empty"));
  }
  ASSIGN_OR_RETURN(LoadedModel lm, OpenModel(spec.model(), spec.tokenizer()));
  // Provenance: the model's files and its tokenizer, hashed while the job runs.
  std::vector<std::string> hashed = lm.checkpoint->source_files();
  hashed.push_back(lm.tokenizer_path);
  FileDigests model_digests(hashed);

  LlamaModel& model = lm.model;
  const LlamaConfig dense_config = model.config;
  ASSIGN_OR_RETURN(at::ScalarType dtype,
                   ResolveComputeDType(spec.dtype(), dense_config.torch_dtype, device));
  const SparsityPattern pattern = PatternOf(spec);
  if (pattern.is_nm() && method != v1::METHOD_TRANSACT) {
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
      ResolveSeqlen(spec.calibration().seqlen(), dense_config, "calibration.seqlen", &seq_error);
  const int64_t eval_t =
      spec.has_evaluation()
          ? ResolveSeqlen(spec.evaluation().seqlen(), dense_config, "evaluation.seqlen", &seq_error)
          : 0;
  RETURN_IF_ERROR(seq_error);
  const bool eval_dense = !spec.skip_dense_eval();
  const bool eval_calibration = !spec.skip_calibration_eval();

  // Data.
  const std::string& calib_path = spec.calibration().uri();
  ASSIGN_OR_RETURN(TokenizedCorpus calib_corpus,
                   LoadCorpus(calib_path, lm.tokenizer.get(), dense_config.vocab_size));
  ASSIGN_OR_RETURN(TokenWindows calib,
                   SampleCalibration(calib_corpus, spec.calibration().num_samples(), calib_t,
                                     spec.calibration().seed()));
  std::optional<TokenWindows> eval;
  if (spec.has_evaluation()) {
    ASSIGN_OR_RETURN(
        TokenizedCorpus eval_corpus,
        LoadCorpus(spec.evaluation().uri(), lm.tokenizer.get(), dense_config.vocab_size));
    ASSIGN_OR_RETURN(eval, EvalWindows(eval_corpus, eval_t, spec.evaluation().max_windows()));
  }
  // The data files are small next to a model: hash them here.
  std::vector<std::string> data_files = {calib_path};
  if (eval) data_files.push_back(spec.evaluation().uri());
  FileDigests data_digests(data_files);
  ASSIGN_OR_RETURN(std::vector<FileDigest> data_files_hashed, data_digests.Wait());
  const at::Tensor calib_tokens = WindowsTensor(calib);
  const at::Tensor eval_tokens = eval ? WindowsTensor(*eval) : at::Tensor();

  // Plan the progress fractions.
  const double calib_work = static_cast<double>(calib.windows * calib.seqlen);
  const double eval_work = eval ? static_cast<double>(eval->windows * eval->seqlen) : 0.0;
  const double method_factor = method == v1::METHOD_MAGNITUDE   ? 1.0
                               : method == v1::METHOD_WANDA     ? 2.0
                               : method == v1::METHOD_SPARSEGPT ? 3.0
                               : method == v1::METHOD_TRANSACT  ? 1.5
                                                                : 8.0;
  // Passes over the layers in the prune stage (the executor counts steps over all of them).
  const int passes = method == v1::METHOD_BARBER     ? 2
                     : method == v1::METHOD_TRANSACT ? spec.transact().shots()
                                                     : 1;
  StagePlan plan;
  plan.Add(v1::STAGE_LOAD, 0.01 * calib_work + 1);
  if (eval && eval_dense) plan.Add(v1::STAGE_EVAL_DENSE, eval_work);
  if (eval_calibration) plan.Add(v1::STAGE_CALIB_DENSE, calib_work);
  plan.Add(v1::STAGE_PRUNE, method_factor * calib_work);
  if (eval_calibration) plan.Add(v1::STAGE_CALIB_PRUNED, calib_work);
  if (eval) plan.Add(v1::STAGE_EVAL_PRUNED, eval_work);
  if (!output_dir.empty()) plan.Add(v1::STAGE_WRITE, 0.05 * calib_work + 1);

  bool cancelled = false;
  auto report_progress = [&](const v1::EngineProgress& p) {
    if (cancelled || !progress) return !cancelled;
    if (!progress(p)) cancelled = true;
    return !cancelled;
  };
  auto simple = [](v1::Stage stage, double fraction, std::string message) {
    v1::EngineProgress p;
    p.set_stage(stage);
    p.set_fraction(fraction);
    p.set_message(std::move(message));
    return p;
  };
  // Layer progress of a stage; `stage_passes` > 1 splits the executor's steps into passes.
  auto stage_progress = [&](v1::Stage stage, const std::string& what,
                            int stage_passes) -> LayerProgress {
    return [&, stage, what, stage_passes](int64_t step, int64_t steps) {
      const double within = double(step + 1) / double(steps + 1);
      const int64_t per_pass = std::max<int64_t>(1, steps / stage_passes);
      const int64_t at = std::min(step, steps - 1);
      v1::EngineProgress p;
      p.set_stage(stage);
      p.set_layer(at % per_pass);
      p.set_layers(per_pass);
      if (stage == v1::STAGE_PRUNE) {
        p.set_pass(static_cast<int32_t>(at / per_pass) + 1);
        p.set_passes(stage_passes);
      }
      p.set_fraction(plan.At(stage, within));
      p.set_message(absl::StrCat(
          what, ": layer ", at % per_pass + 1, "/", per_pass,
          stage_passes > 1 ? absl::StrCat(" (pass ", at / per_pass + 1, "/", stage_passes, ")")
                           : std::string()));
      return report_progress(p);
    };
  };
  if (!report_progress(simple(v1::STAGE_LOAD, plan.At(v1::STAGE_LOAD, 1.0),
                              absl::StrCat("loaded ", spec.model())))) {
    return absl::CancelledError("cancelled");
  }

  ForwardOptions fwd{.device = device, .dtype = dtype, .batch_size = spec.batch_size()};
  v1::PruneReport rep;
  v1::BuildInfo* build = rep.mutable_build();
  build->set_version(PrunerdVersion());
  build->set_commit(PrunerdCommit());
  build->set_engine(absl::StrCat("torch ", TorchVersion()));
  *rep.mutable_spec() = spec;
  rep.set_device(options.device);
  rep.set_compute_dtype(ProtoDType(dtype));
  v1::ModelInfo* mi = rep.mutable_model();
  mi->set_path(spec.model());
  mi->set_format(lm.checkpoint->format() == CheckpointFormat::kLlama2c
                     ? v1::MODEL_FORMAT_LLAMA2C
                     : v1::MODEL_FORMAT_HUGGINGFACE);
  mi->set_model_type(ModelType(*lm.checkpoint));
  mi->set_layers(dense_config.num_hidden_layers);
  mi->set_hidden_size(dense_config.hidden_size);
  mi->set_parameters(dense_config.NumParameters());
  mi->set_dtype(ProtoDType(dense_config.torch_dtype));
  FillDataInfo(calib, spec.calibration().seed(), data_files_hashed[0], rep.mutable_calibration());
  if (eval) FillDataInfo(*eval, 0, data_files_hashed[1], rep.mutable_evaluation());

  // One evaluation pass, with device errors turned into a status.
  auto evaluate = [&](const at::Tensor& tokens, v1::Stage stage, v1::EvalTarget target,
                      const std::string& what) -> absl::Status {
    const auto start = Clock::now();
    absl::StatusOr<std::vector<double>> nll;
    RETURN_IF_ERROR(TorchCall(
        what, [&] { nll = WindowNll(model, tokens, fwd, stage_progress(stage, what, 1)); }));
    if (!nll.ok()) return nll.status();
    v1::Evaluation* e = rep.add_evaluations();
    e->set_target(target);
    e->set_perplexity(Ppl(*nll));
    e->set_windows(tokens.size(0));
    e->set_seqlen(tokens.size(1));
    e->set_seconds(Since(start));
    v1::EngineProgress p =
        simple(stage, plan.At(stage, 1.0), absl::StrCat(what, ": perplexity ", e->perplexity()));
    *p.mutable_evaluation() = *e;
    report_progress(p);
    return absl::OkStatus();
  };
  auto fail = [&](absl::Status s) {
    ReleaseDeviceCache(device);
    return s;
  };

  const auto dense_eval_start = Clock::now();
  if (eval && eval_dense) {
    if (absl::Status s =
            evaluate(eval_tokens, v1::STAGE_EVAL_DENSE, v1::EVAL_TARGET_DENSE, "dense");
        !s.ok()) {
      return fail(s);
    }
  }
  if (eval_calibration) {
    if (absl::Status s = evaluate(calib_tokens, v1::STAGE_CALIB_DENSE,
                                  v1::EVAL_TARGET_CALIBRATION_DENSE, "calibration dense");
        !s.ok()) {
      return fail(s);
    }
  }
  const double dense_eval_seconds = Since(dense_eval_start);

  // Prune.
  const auto prune_start = Clock::now();
  v1::TimingReport* timing = rep.mutable_timing();
  int64_t peak_device = 0;
  if (method == v1::METHOD_TRANSACT) {
    absl::StatusOr<v1::TransActReport> details;
    RETURN_IF_ERROR(TorchCall("transact", [&] {
      details = TransActPrune(model, calib_tokens, spec.transact(), fwd,
                              stage_progress(v1::STAGE_PRUNE, "prune", passes));
    }));
    if (!details.ok()) return fail(details.status());
    *rep.mutable_transact() = *std::move(details);
    peak_device = DevicePeakBytes(device);
    const int64_t before = dense_config.NumParameters();
    const int64_t after = model.config.NumParameters();
    rep.set_sparsity(1.0 - double(after) / double(before));
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<LayerPruner> pruner, MakePruner(spec));
    absl::StatusOr<ExecutorResult> ex;
    RETURN_IF_ERROR(TorchCall("prune", [&] {
      ex = PruneLayerwise(model, calib_tokens, *pruner, pattern, fwd,
                          stage_progress(v1::STAGE_PRUNE, "prune", passes));
    }));
    if (!ex.ok()) return fail(ex.status());
    v1::SparsityReport* sp = rep.mutable_sparsity_detail();
    int64_t zeros_total = 0, weights_total = 0;
    for (size_t l = 0; l < ex->layers.size(); ++l) {
      const LayerRecord& r = ex->layers[l];
      timing->add_per_layer_seconds(r.seconds);
      for (Proj p : kAllProjs) {
        const size_t i = static_cast<size_t>(p);
        v1::MatrixSparsity* m = sp->add_per_matrix();
        m->set_layer(static_cast<int64_t>(l));
        m->set_proj(std::string(ProjName(p)));
        m->set_zeros(r.zeros[i]);
        m->set_numel(r.numel[i]);
        m->set_sparsity(double(r.zeros[i]) / double(r.numel[i]));
        zeros_total += r.zeros[i];
        weights_total += r.numel[i];
      }
    }
    for (const auto& [stage, secs] : ex->stage_seconds) {
      (*timing->mutable_stage_seconds())[stage] = secs;
    }
    peak_device = ex->peak_device_bytes;
    pruner->Report(&rep);
    sp->set_zeros(zeros_total);
    sp->set_weights(weights_total);
    sp->set_total(weights_total > 0 ? double(zeros_total) / double(weights_total) : 0.0);
    rep.set_sparsity(sp->total());
  }
  rep.set_calibration_tokens_used(UsesCalibration(method) ? calib.windows * calib.seqlen : 0);
  const double prune_seconds = Since(prune_start);

  const auto pruned_eval_start = Clock::now();
  if (eval_calibration) {
    if (absl::Status s = evaluate(calib_tokens, v1::STAGE_CALIB_PRUNED,
                                  v1::EVAL_TARGET_CALIBRATION_PRUNED, "calibration pruned");
        !s.ok()) {
      return fail(s);
    }
  }
  if (eval) {
    if (absl::Status s =
            evaluate(eval_tokens, v1::STAGE_EVAL_PRUNED, v1::EVAL_TARGET_PRUNED, "pruned");
        !s.ok()) {
      return fail(s);
    }
  }
  const double pruned_eval_seconds = Since(pruned_eval_start);
  ReleaseDeviceCache(device);

  timing->set_prune_seconds(prune_seconds);
  timing->set_eval_dense_seconds(dense_eval_seconds);
  timing->set_eval_pruned_seconds(pruned_eval_seconds);
  rep.mutable_memory()->set_peak_device_bytes(peak_device);
  rep.mutable_memory()->set_peak_host_bytes(HostPeakBytes());

  if (!output_dir.empty()) {
    report_progress(simple(v1::STAGE_WRITE, plan.At(v1::STAGE_WRITE, 0.0),
                           absl::StrCat("writing ", output_dir)));
    const auto write_start = Clock::now();
    absl::Status s;
    RETURN_IF_ERROR(
        TorchCall("write", [&] { s = WriteHfModel(model, lm.tokenizer_path, output_dir); }));
    RETURN_IF_ERROR(s);
    rep.set_output_dir(output_dir);
    timing->set_write_seconds(Since(write_start));
  }
  {
    ASSIGN_OR_RETURN(std::vector<FileDigest> files, model_digests.Wait());
    SetDigest(files.back(), mi->mutable_tokenizer());
    files.pop_back();
    for (const FileDigest& f : files) SetDigest(f, mi->add_files());
    mi->set_sha256(CombinedDigest(files));
  }
  timing->set_total_seconds(Since(job_start));
  if (cancelled) return absl::CancelledError("cancelled");
  report_progress(simple(v1::STAGE_DONE, 1.0, "done"));
  return rep;
}

}  // namespace prunerd
