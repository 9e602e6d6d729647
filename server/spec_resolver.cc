#include "server/job_spec_mapping.h"

#include <sys/stat.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "server/sha256.h"

namespace prunerd {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// The engine's validation names fields relative to the spec ("ratio: ..."); on the wire they
// are under "spec.".
absl::Status UnderSpec(const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("spec.", s.message()));
}

// The numeric part of a data source with a stand-in path, for validation before file lookup.
DataSpec PlaceholderData(const v1::DataSource& d) {
  static const std::string* const kPlaceholder = new std::string("(placeholder)");
  DataSpec out;
  out.path = *kPlaceholder;
  out.num_samples = d.num_samples() == 0 ? kDefaultCalibrationSamples : d.num_samples();
  out.seqlen = d.seqlen() == 0 ? kDefaultSeqlen : d.seqlen();
  out.seed = d.seed();
  out.max_windows = d.max_windows();
  return out;
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

bool IsValidLabelKey(absl::string_view key) {
  if (key.empty() || key.size() > 63) return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                    c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

absl::Status ValidateSpecShape(const v1::JobSpec& spec) {
  if (spec.model().empty()) return FieldError("spec.model", "is required");
  if (spec.method().empty()) {
    return FieldError("spec.method",
                      "is required (magnitude, wanda, sparsegpt, barber or transact)");
  }
  absl::StatusOr<Method> method = ParseMethod(spec.method());
  if (!method.ok()) return UnderSpec(method.status());
  if (*method != Method::kTransAct && spec.sparsity_case() == v1::JobSpec::SPARSITY_NOT_SET) {
    return FieldError("spec.ratio", "a sparsity ratio or an N:M pattern is required");
  }
  if (spec.sparsity_case() == v1::JobSpec::kPattern) {
    if (absl::StatusOr<SparsityPattern> p = ParseNM(spec.pattern()); !p.ok()) {
      return UnderSpec(p.status());
    }
  }
  if (!spec.has_calibration() ||
      spec.calibration().source_case() == v1::DataSource::SOURCE_NOT_SET) {
    return FieldError("spec.calibration", "a dataset name or a file uri is required");
  }
  if (spec.has_evaluation() && spec.evaluation().source_case() == v1::DataSource::SOURCE_NOT_SET) {
    return FieldError("spec.evaluation", "a dataset name or a file uri is required when set");
  }
  if (spec.priority() < -kMaxPriority || spec.priority() > kMaxPriority) {
    return FieldError("spec.priority", absl::StrCat("must be in [", -kMaxPriority, ", ",
                                                    kMaxPriority, "], got ", spec.priority()));
  }
  if (spec.labels_size() > kMaxLabels) {
    return FieldError("spec.labels", absl::StrCat("at most ", kMaxLabels, " labels"));
  }
  for (const auto& [key, value] : spec.labels()) {
    if (!IsValidLabelKey(key)) {
      return FieldError("spec.labels",
                        absl::StrCat("bad key \"", key, "\" (1-63 characters of [a-z0-9_.-/])"));
    }
    if (value.size() > 256) {
      return FieldError("spec.labels", absl::StrCat("value of \"", key, "\" exceeds 256 bytes"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DataSpec> SpecResolver::ResolveData(const v1::DataSource& d,
                                                   const std::string& field,
                                                   bool calibration) const {
  DataSpec out;
  if (d.source_case() == v1::DataSource::kDataset) {
    ASSIGN_OR_RETURN(out.path, datasets_->Resolve(absl::StrCat(field, ".dataset"), d.dataset()));
  } else {
    const std::string f = absl::StrCat(field, ".uri");
    ASSIGN_OR_RETURN(out.path, roots_->Resolve(f, d.uri()));
    if (!IsRegularFile(out.path)) {
      return FieldError(f, absl::StrCat("not a regular file: ", d.uri()));
    }
  }
  const DataSpec numbers = PlaceholderData(d);
  out.num_samples = numbers.num_samples;
  out.seqlen = numbers.seqlen;
  out.seed = numbers.seed;
  out.max_windows = numbers.max_windows;
  (void)calibration;
  return out;
}

absl::StatusOr<PruneJobSpec> SpecResolver::Resolve(const v1::JobSpec& spec) const {
  RETURN_IF_ERROR(ValidateSpecShape(spec));
  PruneJobSpec out;
  ASSIGN_OR_RETURN(out.method, ParseMethod(spec.method()));

  // Numbers and names first (cheap, and the most common mistakes), files after.
  if (spec.sparsity_case() == v1::JobSpec::kPattern) {
    ASSIGN_OR_RETURN(out.pattern, ParseNM(spec.pattern()));
  } else if (spec.sparsity_case() == v1::JobSpec::kRatio) {
    out.pattern = SparsityPattern{.ratio = spec.ratio()};
  }
  const v1::BarberOptions& b = spec.barber();
  if (!b.init().empty()) {
    absl::StatusOr<Method> init = ParseMethod(b.init());
    if (!init.ok()) {
      return FieldError("spec.barber.init",
                        absl::StrCat("unknown method \"", b.init(),
                                     "\" (expected magnitude, wanda or sparsegpt)"));
    }
    out.barber.init = *init;
  }
  if (b.has_tau()) out.barber.tau = b.tau();
  if (!b.granularity().empty()) {
    absl::StatusOr<BarberGranularity> g = ParseBarberGranularity(b.granularity());
    if (!g.ok()) return UnderSpec(g.status());
    out.barber.granularity = *g;
  }
  if (!b.metric().empty()) {
    absl::StatusOr<BarberMetric> m = ParseBarberMetric(b.metric());
    if (!m.ok()) return UnderSpec(m.status());
    out.barber.metric = *m;
  }
  out.barber.retain_reconstruction = b.retain_reconstruction();
  if (!b.grad_precision().empty()) out.barber.grad_precision = b.grad_precision();
  out.barber.measure_block_mse = !b.skip_block_mse();
  if (spec.sparsegpt().has_percdamp()) out.sparsegpt.percdamp = spec.sparsegpt().percdamp();
  if (spec.sparsegpt().blocksize() != 0) out.sparsegpt.blocksize = spec.sparsegpt().blocksize();
  const v1::TransActOptions& t = spec.transact();
  if (t.has_attn_ratio()) out.transact.attn_ratio = t.attn_ratio();
  if (t.has_mlp_ratio()) out.transact.mlp_ratio = t.mlp_ratio();
  out.transact.attn_dim = t.attn_dim();
  out.transact.mlp_dim = t.mlp_dim();
  if (t.shots() != 0) out.transact.shots = t.shots();
  if (!t.gqa_mode().empty()) {
    absl::StatusOr<GqaMode> g = ParseGqaMode(t.gqa_mode());
    if (!g.ok()) return UnderSpec(g.status());
    out.transact.gqa_mode = *g;
  }
  out.dtype = spec.dtype().empty() ? "auto" : spec.dtype();
  out.batch_size = spec.batch_size();
  out.eval_dense = !spec.skip_dense_eval();
  out.eval_calibration = !spec.skip_calibration_eval();

  // The engine's checks need a path in the data specs; validate with placeholders first so a
  // numeric mistake is reported before any file lookup.
  {
    PruneJobSpec probe = out;
    probe.model_path = spec.model();
    probe.calibration = PlaceholderData(spec.calibration());
    if (spec.has_evaluation()) probe.evaluation = PlaceholderData(spec.evaluation());
    RETURN_IF_ERROR(UnderSpec(ValidateJobSpec(probe)));
  }

  ASSIGN_OR_RETURN(out.model_path, roots_->Resolve("spec.model", spec.model()));
  if (IsDirectory(out.model_path)) {
    if (!IsRegularFile(absl::StrCat(out.model_path, "/config.json"))) {
      return FieldError("spec.model", absl::StrCat("directory without config.json (not a Hugging "
                                                   "Face model): ",
                                                   spec.model()));
    }
  } else if (!IsRegularFile(out.model_path)) {
    return FieldError("spec.model", absl::StrCat("not a file or directory: ", spec.model()));
  }
  if (!spec.tokenizer().empty()) {
    ASSIGN_OR_RETURN(out.tokenizer_path, roots_->Resolve("spec.tokenizer", spec.tokenizer()));
    if (!IsRegularFile(out.tokenizer_path)) {
      return FieldError("spec.tokenizer", absl::StrCat("not a regular file: ", spec.tokenizer()));
    }
  }
  ASSIGN_OR_RETURN(out.calibration, ResolveData(spec.calibration(), "spec.calibration", true));
  if (spec.has_evaluation()) {
    ASSIGN_OR_RETURN(DataSpec e, ResolveData(spec.evaluation(), "spec.evaluation", false));
    out.evaluation = e;
  }
  RETURN_IF_ERROR(UnderSpec(ValidateJobSpec(out)));
  return out;
}

std::string SpecHash(const v1::JobSpec& spec) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream sos(&bytes);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&cos);
  }
  return Sha256Hex(bytes);
}

}  // namespace prunerd
