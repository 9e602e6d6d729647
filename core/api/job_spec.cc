#include "core/api/job_spec.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace prunerd {
namespace {

using google::protobuf::EnumDescriptor;

// The prefix every value name of `type` shares, up to and including its last '_'.
size_t PrefixLength(const EnumDescriptor* type) {
  std::string prefix = type->value(0)->name();
  for (int i = 1; i < type->value_count(); ++i) {
    const std::string& n = type->value(i)->name();
    size_t k = 0;
    while (k < prefix.size() && k < n.size() && prefix[k] == n[k]) ++k;
    prefix.resize(k);
  }
  const size_t underscore = prefix.rfind('_');
  return underscore == std::string::npos ? 0 : underscore + 1;
}

bool IsUnspecified(const std::string& value_name) {
  return absl::EndsWith(value_name, "_UNSPECIFIED");
}

// Violations in field order, with a helper for the common message shapes.
class Violations {
 public:
  void Add(std::string field, std::string description) {
    out_.push_back({std::move(field), std::move(description)});
  }
  std::vector<FieldViolation> Take() { return std::move(out_); }

 private:
  std::vector<FieldViolation> out_;
};

template <typename E>
bool KnownValue(int v) {
  return google::protobuf::GetEnumDescriptor<E>()->FindValueByNumber(v) != nullptr;
}

void CheckData(const v1::DataSource& d, const std::string& field, bool calibration, Violations* v) {
  if (d.source_case() == v1::DataSource::SOURCE_NOT_SET) {
    v->Add(field, calibration ? "a dataset name or a file uri is required"
                              : "a dataset name or a file uri is required when set");
  } else if (d.source_case() == v1::DataSource::kDataset && d.dataset().empty()) {
    v->Add(field + ".dataset", "is empty");
  } else if (d.source_case() == v1::DataSource::kUri && d.uri().empty()) {
    v->Add(field + ".uri", "is empty");
  }
  if (calibration && (d.num_samples() < 0 || d.num_samples() > kMaxCalibrationSamples)) {
    v->Add(field + ".num_samples",
           absl::StrCat("must be in [1, ", kMaxCalibrationSamples,
                        "] (0 = ", kDefaultCalibrationSamples, "), got ", d.num_samples()));
  }
  if (d.seqlen() < 0 || d.seqlen() == 1 || d.seqlen() > kMaxSeqlen) {
    v->Add(field + ".seqlen", absl::StrCat("must be in [2, ", kMaxSeqlen,
                                           "] (or 0 for the model's default), got ", d.seqlen()));
  }
  if (calibration && d.num_samples() > 0 && d.seqlen() > 0 &&
      d.num_samples() <= kMaxCalibrationSamples && d.seqlen() <= kMaxSeqlen &&
      d.num_samples() * d.seqlen() > kMaxCalibrationTokens) {
    v->Add(field, absl::StrCat("num_samples × seqlen = ", d.num_samples() * d.seqlen(),
                               " tokens exceeds the limit of ", kMaxCalibrationTokens));
  }
  if (d.max_windows() < 0) {
    v->Add(field + ".max_windows", absl::StrCat("must be >= 0, got ", d.max_windows()));
  }
}

}  // namespace

// ---- Enum names ---------------------------------------------------------------------------

std::string EnumValueShortName(const EnumDescriptor* type, int value) {
  const google::protobuf::EnumValueDescriptor* d = type->FindValueByNumber(value);
  if (d == nullptr) return absl::StrCat("unknown(", value, ")");
  return absl::AsciiStrToLower(d->name().substr(PrefixLength(type)));
}

std::string EnumChoices(const EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (IsUnspecified(type->value(i)->name())) continue;
    names.push_back(EnumValueShortName(type, type->value(i)->number()));
  }
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<int> ParseEnumValue(const EnumDescriptor* type, absl::string_view text,
                                   absl::string_view field) {
  const std::string upper = absl::AsciiStrToUpper(text);
  const size_t prefix = PrefixLength(type);
  for (int i = 0; i < type->value_count(); ++i) {
    const std::string& name = type->value(i)->name();
    if (IsUnspecified(name)) continue;
    if (upper == name || upper == name.substr(prefix)) return type->value(i)->number();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": unknown value \"", text, "\" (expected ", EnumChoices(type), ")"));
}

// ---- Sparsity -----------------------------------------------------------------------------

SparsityPattern PatternOf(const v1::JobSpec& spec) {
  if (spec.sparsity_case() == v1::JobSpec::kPattern) {
    const int n = spec.pattern().n(), m = spec.pattern().m();
    return SparsityPattern{.ratio = m > 0 ? double(n) / m : 0.0, .n = n, .m = m};
  }
  return SparsityPattern{.ratio = spec.ratio()};
}

absl::StatusOr<v1::NMPattern> ParseNMPattern(absl::string_view text, absl::string_view field) {
  const std::string t(text);
  const size_t colon = t.find(':');
  int n = 0, m = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(t.substr(0, colon), &n) ||
      !absl::SimpleAtoi(t.substr(colon + 1), &m)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": malformed N:M pattern \"", t, "\" (expected e.g. \"2:4\")"));
  }
  if (m <= 0 || n <= 0 || n >= m) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": N:M pattern \"", t, "\" needs 0 < N < M (N zeros in every M weights)"));
  }
  v1::NMPattern p;
  p.set_n(n);
  p.set_m(m);
  return p;
}

std::string PatternName(const SparsityPattern& p) {
  return p.is_nm() ? absl::StrCat(p.n, ":", p.m) : "unstructured";
}

// ---- Defaults -----------------------------------------------------------------------------

bool UsesCalibration(v1::Method method) { return method != v1::METHOD_MAGNITUDE; }

bool UsesSparseGpt(const v1::JobSpec& spec) {
  return spec.method() == v1::METHOD_SPARSEGPT ||
         (spec.method() == v1::METHOD_BARBER && spec.barber().init() == v1::METHOD_SPARSEGPT);
}

v1::JobSpec WithDefaults(v1::JobSpec spec) {
  if (spec.method() == v1::METHOD_BARBER) {
    v1::BarberOptions* b = spec.mutable_barber();
    if (b->init() == v1::METHOD_UNSPECIFIED) b->set_init(v1::METHOD_WANDA);
    if (!b->has_tau()) b->set_tau(kDefaultBarberTau);
  } else {
    spec.clear_barber();
  }
  if (UsesSparseGpt(spec)) {
    v1::SparseGptOptions* g = spec.mutable_sparsegpt();
    if (!g->has_percdamp()) g->set_percdamp(kDefaultPercdamp);
    if (g->blocksize() == 0) g->set_blocksize(kDefaultBlocksize);
  } else {
    spec.clear_sparsegpt();
  }
  if (spec.method() == v1::METHOD_TRANSACT) {
    v1::TransActOptions* t = spec.mutable_transact();
    if (!t->has_attn_ratio()) t->set_attn_ratio(kDefaultTransActRatio);
    if (!t->has_mlp_ratio()) t->set_mlp_ratio(kDefaultTransActRatio);
    if (t->shots() == 0) t->set_shots(1);
  } else {
    spec.clear_transact();
  }
  if (spec.has_calibration() && spec.calibration().num_samples() == 0) {
    spec.mutable_calibration()->set_num_samples(kDefaultCalibrationSamples);
  }
  return spec;
}

// ---- Validation ---------------------------------------------------------------------------

std::vector<FieldViolation> SpecViolations(const v1::JobSpec& raw) {
  Violations v;
  if (raw.model().empty()) v.Add("model", "is required");
  if (raw.method() == v1::METHOD_UNSPECIFIED) {
    v.Add("method", absl::StrCat("is required (", EnumChoices<v1::Method>(), ")"));
  } else if (!KnownValue<v1::Method>(raw.method())) {
    v.Add("method", absl::StrCat("unknown method ", raw.method(), " (expected ",
                                 EnumChoices<v1::Method>(), ")"));
  }
  const v1::JobSpec spec = WithDefaults(raw);
  const v1::Method method = spec.method();
  const bool structured = method == v1::METHOD_TRANSACT;
  if (!structured && method != v1::METHOD_UNSPECIFIED) {
    switch (spec.sparsity_case()) {
      case v1::JobSpec::SPARSITY_NOT_SET:
        v.Add("ratio", "a sparsity ratio or an N:M pattern is required");
        break;
      case v1::JobSpec::kRatio:
        if (!(spec.ratio() >= 0.0 && spec.ratio() < 1.0)) {  // also rejects NaN
          v.Add("ratio", absl::StrCat("must be in [0, 1), got ", spec.ratio()));
        }
        break;
      case v1::JobSpec::kPattern:
        if (spec.pattern().n() <= 0 || spec.pattern().m() <= 0 ||
            spec.pattern().n() >= spec.pattern().m()) {
          v.Add("pattern", absl::StrCat("N:M pattern ", spec.pattern().n(), ":", spec.pattern().m(),
                                        " needs 0 < N < M (N zeros in every M weights)"));
        }
        break;
    }
  }
  if (method == v1::METHOD_BARBER) {
    const v1::BarberOptions& b = spec.barber();
    if (b.init() != v1::METHOD_MAGNITUDE && b.init() != v1::METHOD_WANDA &&
        b.init() != v1::METHOD_SPARSEGPT) {
      v.Add("barber.init",
            absl::StrCat("must be magnitude, wanda or sparsegpt, got ", EnumName(b.init())));
    }
    if (!(b.tau() >= 0.0 && b.tau() <= 1.0)) {
      v.Add("barber.tau", absl::StrCat("must be in [0, 1], got ", b.tau()));
    }
    if (!KnownValue<v1::BarberGranularity>(b.granularity())) {
      v.Add("barber.granularity", absl::StrCat("unknown value ", b.granularity()));
    }
    if (!KnownValue<v1::BarberMetric>(b.metric())) {
      v.Add("barber.metric", absl::StrCat("unknown value ", b.metric()));
    }
    if (!KnownValue<v1::GradPrecision>(b.grad_precision())) {
      v.Add("barber.grad_precision", absl::StrCat("unknown value ", b.grad_precision()));
    }
    if (b.retain_reconstruction() && b.init() != v1::METHOD_SPARSEGPT) {
      v.Add("barber.retain_reconstruction", "only applies to init sparsegpt");
    }
  }
  if (UsesSparseGpt(spec)) {
    const v1::SparseGptOptions& g = spec.sparsegpt();
    if (!(g.percdamp() > 0.0 && g.percdamp() < 1.0)) {
      v.Add("sparsegpt.percdamp", absl::StrCat("must be in (0, 1), got ", g.percdamp()));
    }
    if (g.blocksize() <= 0) {
      v.Add("sparsegpt.blocksize", absl::StrCat("must be > 0, got ", g.blocksize()));
    } else if (spec.sparsity_case() == v1::JobSpec::kPattern && spec.pattern().m() > 0 &&
               g.blocksize() % spec.pattern().m() != 0) {
      v.Add("sparsegpt.blocksize", absl::StrCat("must be a multiple of M=", spec.pattern().m(),
                                                " for N:M, got ", g.blocksize()));
    }
  }
  if (structured) {
    const v1::TransActOptions& t = spec.transact();
    if (!(t.attn_ratio() >= 0.0 && t.attn_ratio() < 1.0)) {
      v.Add("transact.attn_ratio", absl::StrCat("must be in [0, 1), got ", t.attn_ratio()));
    }
    if (!(t.mlp_ratio() >= 0.0 && t.mlp_ratio() < 1.0)) {
      v.Add("transact.mlp_ratio", absl::StrCat("must be in [0, 1), got ", t.mlp_ratio()));
    }
    if (t.attn_dim() < 0) v.Add("transact.attn_dim", "must be >= 0");
    if (t.mlp_dim() < 0) v.Add("transact.mlp_dim", "must be >= 0");
    if (t.shots() < 1 || t.shots() > 64) {
      v.Add("transact.shots", absl::StrCat("must be in [1, 64], got ", t.shots()));
    }
    if (!KnownValue<v1::GqaMode>(t.gqa_mode())) {
      v.Add("transact.gqa_mode", absl::StrCat("unknown value ", t.gqa_mode()));
    }
  }
  if (!raw.has_calibration()) {
    v.Add("calibration", "a dataset name or a file uri is required");
  } else {
    CheckData(raw.calibration(), "calibration", /*calibration=*/true, &v);
  }
  if (raw.has_evaluation()) CheckData(raw.evaluation(), "evaluation", /*calibration=*/false, &v);
  if (!KnownValue<v1::DType>(raw.dtype())) {
    v.Add("dtype", absl::StrCat("unknown dtype ", raw.dtype(), " (expected ",
                                EnumChoices<v1::DType>(), ")"));
  }
  if (raw.batch_size() < 0) v.Add("batch_size", "must be >= 0");
  if (raw.priority() < -kMaxPriority || raw.priority() > kMaxPriority) {
    v.Add("priority", absl::StrCat("must be in [", -kMaxPriority, ", ", kMaxPriority, "], got ",
                                   raw.priority()));
  }
  if (raw.labels_size() > kMaxLabels) {
    v.Add("labels", absl::StrCat("at most ", kMaxLabels, " labels, got ", raw.labels_size()));
  }
  for (const auto& [key, value] : raw.labels()) {
    if (!IsValidLabelKey(key)) {
      v.Add("labels",
            absl::StrCat("bad key \"", key.substr(0, 80), "\" (1-63 characters of [a-z0-9_.-/])"));
    } else if (value.size() > 256) {
      v.Add("labels", absl::StrCat("value of \"", key, "\" exceeds 256 bytes"));
    }
  }
  return v.Take();
}

bool IsValidLabelKey(absl::string_view key) {
  if (key.empty() || key.size() > 63) return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                    c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

absl::Status ViolationsToStatus(const std::vector<FieldViolation>& violations,
                                absl::string_view prefix) {
  if (violations.empty()) return absl::OkStatus();
  std::vector<std::string> parts;
  for (const FieldViolation& f : violations) {
    parts.push_back(absl::StrCat(prefix, f.field, ": ", f.description));
  }
  return absl::InvalidArgumentError(absl::StrJoin(parts, "; "));
}

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  return ViolationsToStatus(SpecViolations(spec));
}

}  // namespace prunerd
