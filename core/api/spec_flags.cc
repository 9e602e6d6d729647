#include "core/api/spec_flags.h"

#include "absl/strings/str_cat.h"
#include "core/api/job_spec.h"
#include "core/common/status_macros.h"

namespace prunerd {
namespace {

absl::Status Exclusive(const char* a, const char* b) {
  return absl::InvalidArgumentError(absl::StrCat("--", a, " and --", b, " are exclusive"));
}

template <typename E>
absl::StatusOr<E> FlagEnum(const std::string& value, const char* flag) {
  return ParseEnum<E>(value, absl::StrCat("--", flag));
}

}  // namespace

SpecFlags::SpecFlags(ArgParser& p) : parser_(p) {
  p.AddString("model", &model_,
              "the model: a Hugging Face directory or llama2.c .bin (daemon: a path or file:// URI "
              "inside its model roots)");
  p.AddString("tokenizer", &tokenizer_, "tokenizer.model (default: the model's own)");
  p.AddString("method", &method_, absl::StrCat(EnumChoices<v1::Method>()));
  p.AddDouble("ratio", &ratio_, "unstructured sparsity in [0, 1) (the default target)");
  p.AddString("pattern", &pattern_, "N:M pattern such as 2:4 (instead of --ratio)");
  p.AddString("calib-dataset", &calib_dataset_, "calibration: a dataset name (--dataset-dir)");
  p.AddString("calib-file", &calib_file_, "calibration: a text, .jsonl or .safetensors file");
  p.AddInt("calib-samples", &calib_samples_, "calibration windows (0 = 128)");
  p.AddInt("calib-seqlen", &calib_seqlen_, "calibration tokens per window (0 = model default)");
  p.AddInt("calib-seed", &calib_seed_, "calibration sampling seed");
  p.AddString("eval-dataset", &eval_dataset_, "evaluation: a dataset name (--dataset-dir)");
  p.AddString("eval-file", &eval_file_, "evaluation: a text, .jsonl or .safetensors file");
  p.AddInt("eval-seqlen", &eval_seqlen_, "evaluation tokens per window (0 = model default)");
  p.AddInt("eval-max-windows", &eval_max_windows_, "evaluate only the first N windows (0 = all)");
  p.AddBool("skip-dense-eval", &skip_dense_, "do not evaluate the unpruned model");
  p.AddBool("skip-calib-eval", &skip_calib_eval_, "no perplexity on the calibration windows");
  p.AddBool("skip-model-output", &skip_model_, "do not write the pruned model");
  p.AddString("dtype", &dtype_, absl::StrCat(EnumChoices<v1::DType>(), " (auto: the model's)"));
  p.AddInt("batch-size", &batch_size_, "calibration sequences per forward (0 = automatic)");
  p.AddInt("priority", &priority_, "higher runs first, in [-1000, 1000]");
  p.AddRepeated("label", &labels_, "key=value label (repeatable)");
  p.AddString("barber-init", &barber_init_, "barber: initial mask (magnitude, wanda, sparsegpt)");
  p.AddDouble("barber-tau", &barber_tau_, "barber: mask rebuilding ratio in [0, 1]");
  p.AddString("barber-granularity", &barber_granularity_,
              absl::StrCat("barber: ", EnumChoices<v1::BarberGranularity>()));
  p.AddString("barber-metric", &barber_metric_,
              absl::StrCat("barber: ", EnumChoices<v1::BarberMetric>()));
  p.AddBool("barber-retain-reconstruction", &barber_retain_,
            "barber with sparsegpt init: keep SparseGPT's updated weights");
  p.AddString("barber-grad-precision", &barber_grad_precision_,
              absl::StrCat("barber: ", EnumChoices<v1::GradPrecision>(), " gradient passes"));
  p.AddBool("barber-skip-block-mse", &barber_skip_mse_, "barber: no after-rebuild block MSE");
  p.AddDouble("percdamp", &percdamp_, "sparsegpt: Hessian dampening in (0, 1)");
  p.AddInt("blocksize", &blocksize_, "sparsegpt: columns per block (0 = 128)");
  p.AddDouble("attn-ratio", &attn_ratio_, "transact: attention fraction removed");
  p.AddDouble("mlp-ratio", &mlp_ratio_, "transact: MLP fraction removed");
  p.AddInt("attn-dim", &attn_dim_, "transact: target attention dim (wins over the ratio)");
  p.AddInt("mlp-dim", &mlp_dim_, "transact: target MLP size (wins over the ratio)");
  p.AddInt("shots", &shots_, "transact: iterative shots");
  p.AddString("gqa-mode", &gqa_mode_, absl::StrCat("transact: ", EnumChoices<v1::GqaMode>()));
}

std::vector<std::string> SpecFlags::FlagNames() {
  ArgParser p("", "");
  SpecFlags flags(p);
  return p.OptionNames();
}

absl::Status SpecFlags::ApplyTo(v1::JobSpec* s) const {
  if (Set("model")) s->set_model(model_);
  if (Set("tokenizer")) s->set_tokenizer(tokenizer_);
  if (Set("method")) {
    ASSIGN_OR_RETURN(v1::Method m, FlagEnum<v1::Method>(method_, "method"));
    s->set_method(m);
  }
  if (Set("ratio") && Set("pattern")) return Exclusive("ratio", "pattern");
  if (Set("ratio")) s->set_ratio(ratio_);
  if (Set("pattern")) {
    ASSIGN_OR_RETURN(*s->mutable_pattern(), ParseNMPattern(pattern_, "--pattern"));
  }
  if (s->sparsity_case() == v1::JobSpec::SPARSITY_NOT_SET && s->method() != v1::METHOD_TRANSACT) {
    s->set_ratio(ratio_);  // the flag's default target
  }

  if (Set("calib-dataset") && Set("calib-file")) return Exclusive("calib-dataset", "calib-file");
  if (Set("calib-dataset")) s->mutable_calibration()->set_dataset(calib_dataset_);
  if (Set("calib-file")) s->mutable_calibration()->set_uri(calib_file_);
  if (Set("calib-samples")) s->mutable_calibration()->set_num_samples(calib_samples_);
  if (Set("calib-seqlen")) s->mutable_calibration()->set_seqlen(calib_seqlen_);
  if (Set("calib-seed")) s->mutable_calibration()->set_seed(static_cast<uint64_t>(calib_seed_));
  if (Set("eval-dataset") && Set("eval-file")) return Exclusive("eval-dataset", "eval-file");
  if (Set("eval-dataset")) s->mutable_evaluation()->set_dataset(eval_dataset_);
  if (Set("eval-file")) s->mutable_evaluation()->set_uri(eval_file_);
  if (Set("eval-seqlen")) s->mutable_evaluation()->set_seqlen(eval_seqlen_);
  if (Set("eval-max-windows")) s->mutable_evaluation()->set_max_windows(eval_max_windows_);

  if (Set("skip-dense-eval")) s->set_skip_dense_eval(skip_dense_);
  if (Set("skip-calib-eval")) s->set_skip_calibration_eval(skip_calib_eval_);
  if (Set("skip-model-output")) s->set_skip_model_output(skip_model_);
  if (Set("dtype")) {
    ASSIGN_OR_RETURN(v1::DType d, FlagEnum<v1::DType>(dtype_, "dtype"));
    s->set_dtype(d);
  }
  if (Set("batch-size")) s->set_batch_size(batch_size_);
  if (Set("priority")) s->set_priority(static_cast<int32_t>(priority_));
  for (const std::string& kv : labels_) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--label: expected key=value, got ", kv));
    }
    (*s->mutable_labels())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }

  if (Set("barber-init")) {
    ASSIGN_OR_RETURN(v1::Method m, FlagEnum<v1::Method>(barber_init_, "barber-init"));
    s->mutable_barber()->set_init(m);
  }
  if (Set("barber-tau")) s->mutable_barber()->set_tau(barber_tau_);
  if (Set("barber-granularity")) {
    ASSIGN_OR_RETURN(v1::BarberGranularity g,
                     FlagEnum<v1::BarberGranularity>(barber_granularity_, "barber-granularity"));
    s->mutable_barber()->set_granularity(g);
  }
  if (Set("barber-metric")) {
    ASSIGN_OR_RETURN(v1::BarberMetric m,
                     FlagEnum<v1::BarberMetric>(barber_metric_, "barber-metric"));
    s->mutable_barber()->set_metric(m);
  }
  if (Set("barber-retain-reconstruction")) {
    s->mutable_barber()->set_retain_reconstruction(barber_retain_);
  }
  if (Set("barber-grad-precision")) {
    ASSIGN_OR_RETURN(v1::GradPrecision g,
                     FlagEnum<v1::GradPrecision>(barber_grad_precision_, "barber-grad-precision"));
    s->mutable_barber()->set_grad_precision(g);
  }
  if (Set("barber-skip-block-mse")) s->mutable_barber()->set_skip_block_mse(barber_skip_mse_);
  if (Set("percdamp")) s->mutable_sparsegpt()->set_percdamp(percdamp_);
  if (Set("blocksize")) s->mutable_sparsegpt()->set_blocksize(blocksize_);
  if (Set("attn-ratio")) s->mutable_transact()->set_attn_ratio(attn_ratio_);
  if (Set("mlp-ratio")) s->mutable_transact()->set_mlp_ratio(mlp_ratio_);
  if (Set("attn-dim")) s->mutable_transact()->set_attn_dim(attn_dim_);
  if (Set("mlp-dim")) s->mutable_transact()->set_mlp_dim(mlp_dim_);
  if (Set("shots")) s->mutable_transact()->set_shots(static_cast<int32_t>(shots_));
  if (Set("gqa-mode")) {
    ASSIGN_OR_RETURN(v1::GqaMode g, FlagEnum<v1::GqaMode>(gqa_mode_, "gqa-mode"));
    s->mutable_transact()->set_gqa_mode(g);
  }
  return absl::OkStatus();
}

}  // namespace prunerd
