#include "core/api/job_spec.h"

#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace prunerd {
namespace {

absl::Status FieldError(std::string_view field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": ", what));
}

std::string Quoted(std::string_view s) { return absl::StrCat("\"", std::string(s), "\""); }

}  // namespace

std::string_view MethodName(Method m) {
  switch (m) {
    case Method::kMagnitude: return "magnitude";
    case Method::kWanda: return "wanda";
    case Method::kSparseGpt: return "sparsegpt";
    case Method::kBarber: return "barber";
    case Method::kTransAct: return "transact";
  }
  return "?";
}

absl::StatusOr<Method> ParseMethod(std::string_view name) {
  for (Method m : {Method::kMagnitude, Method::kWanda, Method::kSparseGpt, Method::kBarber,
                   Method::kTransAct}) {
    if (MethodName(m) == name) return m;
  }
  return FieldError("method", absl::StrCat("unknown method ", Quoted(name),
                                           " (expected magnitude, wanda, sparsegpt, barber or "
                                           "transact)"));
}

absl::StatusOr<SparsityPattern> ParseNM(std::string_view text) {
  const std::string t(text);
  const size_t colon = t.find(':');
  int n = 0, m = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(t.substr(0, colon), &n) ||
      !absl::SimpleAtoi(t.substr(colon + 1), &m)) {
    return FieldError("pattern", absl::StrCat("malformed N:M pattern ", Quoted(text),
                                              " (expected e.g. \"2:4\")"));
  }
  if (m <= 0 || n <= 0 || n >= m) {
    return FieldError("pattern", absl::StrCat("N:M pattern ", Quoted(text),
                                              " needs 0 < N < M (N zeros in every M weights)"));
  }
  return SparsityPattern{.ratio = double(n) / m, .n = n, .m = m};
}

std::string PatternName(const SparsityPattern& p) {
  return p.is_nm() ? absl::StrCat(p.n, ":", p.m) : "unstructured";
}

std::string_view BarberGranularityName(BarberGranularity g) {
  switch (g) {
    case BarberGranularity::kOutput1: return "output1";
    case BarberGranularity::kInput1: return "input1";
    case BarberGranularity::kLayer: return "layer";
    case BarberGranularity::kBlock: return "block";
  }
  return "?";
}

absl::StatusOr<BarberGranularity> ParseBarberGranularity(std::string_view s) {
  for (auto g : {BarberGranularity::kOutput1, BarberGranularity::kInput1,
                 BarberGranularity::kLayer, BarberGranularity::kBlock}) {
    if (BarberGranularityName(g) == s) return g;
  }
  return FieldError("barber.granularity",
                    absl::StrCat("unknown granularity ", Quoted(s),
                                 " (expected output1, input1, layer or block)"));
}

std::string_view BarberMetricName(BarberMetric m) {
  switch (m) {
    case BarberMetric::kWD: return "wd";
    case BarberMetric::kW: return "w";
    case BarberMetric::kD: return "d";
  }
  return "?";
}

absl::StatusOr<BarberMetric> ParseBarberMetric(std::string_view s) {
  for (auto m : {BarberMetric::kWD, BarberMetric::kW, BarberMetric::kD}) {
    if (BarberMetricName(m) == s) return m;
  }
  return FieldError("barber.metric",
                    absl::StrCat("unknown metric ", Quoted(s), " (expected wd, w or d)"));
}

std::string_view GqaModeName(GqaMode g) {
  return g == GqaMode::kKvGroups ? "kv_groups" : "query_heads";
}

absl::StatusOr<GqaMode> ParseGqaMode(std::string_view s) {
  if (s == "kv_groups") return GqaMode::kKvGroups;
  if (s == "query_heads") return GqaMode::kQueryHeads;
  return FieldError("transact.gqa_mode",
                    absl::StrCat("unknown mode ", Quoted(s), " (expected kv_groups or query_heads)"));
}

namespace {

absl::Status ValidateData(const DataSpec& d, std::string_view field, bool calibration) {
  if (d.path.empty()) return FieldError(absl::StrCat(std::string(field), ".path"), "is required");
  if (d.seqlen < 0 || d.seqlen == 1) {
    return FieldError(absl::StrCat(std::string(field), ".seqlen"),
                      absl::StrCat("must be >= 2 (or 0 for the model's default), got ", d.seqlen));
  }
  if (calibration && d.num_samples <= 0) {
    return FieldError(absl::StrCat(std::string(field), ".num_samples"),
                      absl::StrCat("must be > 0, got ", d.num_samples));
  }
  if (d.max_windows < 0) {
    return FieldError(absl::StrCat(std::string(field), ".max_windows"),
                      absl::StrCat("must be >= 0, got ", d.max_windows));
  }
  return absl::OkStatus();
}

bool IsDevice(const std::string& d) {
  if (d == "cpu" || d == "cuda") return true;
  if (d.rfind("cuda:", 0) != 0) return false;
  int idx;
  return absl::SimpleAtoi(d.substr(5), &idx) && idx >= 0;
}

}  // namespace

absl::Status ValidateJobSpec(const PruneJobSpec& spec) {
  if (spec.model_path.empty()) return FieldError("model", "is required");
  const SparsityPattern& p = spec.pattern;
  if (spec.method != Method::kTransAct) {
    if (p.is_nm()) {
      if (p.n <= 0 || p.n >= p.m) {
        return FieldError("pattern", absl::StrCat("N:M pattern ", p.n, ":", p.m,
                                                  " needs 0 < N < M"));
      }
    } else if (!(p.ratio >= 0.0 && p.ratio < 1.0)) {  // also rejects NaN
      return FieldError("ratio", absl::StrCat("must be in [0, 1), got ", p.ratio));
    }
  }
  if (spec.method == Method::kBarber) {
    const BarberOptions& b = spec.barber;
    if (b.init != Method::kMagnitude && b.init != Method::kWanda &&
        b.init != Method::kSparseGpt) {
      return FieldError("barber.init",
                        absl::StrCat("must be magnitude, wanda or sparsegpt, got ",
                                     Quoted(MethodName(b.init))));
    }
    if (!(b.tau >= 0.0 && b.tau <= 1.0)) {
      return FieldError("barber.tau", absl::StrCat("must be in [0, 1], got ", b.tau));
    }
    if (b.retain_reconstruction && b.init != Method::kSparseGpt) {
      return FieldError("barber.retain_reconstruction", "only applies to init sparsegpt");
    }
    if (b.grad_precision != "auto" && b.grad_precision != "float32" && b.grad_precision != "tf32" &&
        b.grad_precision != "bfloat16") {
      return FieldError("barber.grad_precision",
                        absl::StrCat("unknown precision \"", b.grad_precision,
                                     "\" (expected auto, float32, tf32 or bfloat16)"));
    }
  }
  if (spec.method == Method::kSparseGpt ||
      (spec.method == Method::kBarber && spec.barber.init == Method::kSparseGpt)) {
    if (!(spec.sparsegpt.percdamp > 0.0 && spec.sparsegpt.percdamp < 1.0)) {
      return FieldError("sparsegpt.percdamp",
                        absl::StrCat("must be in (0, 1), got ", spec.sparsegpt.percdamp));
    }
    if (spec.sparsegpt.blocksize <= 0) {
      return FieldError("sparsegpt.blocksize",
                        absl::StrCat("must be > 0, got ", spec.sparsegpt.blocksize));
    }
    if (p.is_nm() && spec.sparsegpt.blocksize % p.m != 0) {
      return FieldError("sparsegpt.blocksize",
                        absl::StrCat("must be a multiple of M=", p.m, " for N:M"));
    }
  }
  if (spec.method == Method::kTransAct) {
    const TransActOptions& t = spec.transact;
    if (!(t.attn_ratio >= 0.0 && t.attn_ratio < 1.0)) {
      return FieldError("transact.attn_ratio",
                        absl::StrCat("must be in [0, 1), got ", t.attn_ratio));
    }
    if (!(t.mlp_ratio >= 0.0 && t.mlp_ratio < 1.0)) {
      return FieldError("transact.mlp_ratio",
                        absl::StrCat("must be in [0, 1), got ", t.mlp_ratio));
    }
    if (t.attn_dim < 0) return FieldError("transact.attn_dim", "must be >= 0");
    if (t.mlp_dim < 0) return FieldError("transact.mlp_dim", "must be >= 0");
    if (t.shots < 1 || t.shots > 64) {
      return FieldError("transact.shots", absl::StrCat("must be in [1, 64], got ", t.shots));
    }
  }
  if (absl::Status s = ValidateData(spec.calibration, "calibration", true); !s.ok()) return s;
  if (spec.evaluation) {
    if (absl::Status s = ValidateData(*spec.evaluation, "evaluation", false); !s.ok()) return s;
  }
  if (!IsDevice(spec.device)) {
    return FieldError("device",
                      absl::StrCat("unknown device ", Quoted(spec.device),
                                   " (expected cpu, cuda or cuda:N)"));
  }
  if (spec.dtype != "auto" && spec.dtype != "float32" && spec.dtype != "float16" &&
      spec.dtype != "bfloat16") {
    return FieldError("dtype", absl::StrCat("unknown dtype ", Quoted(spec.dtype),
                                            " (expected auto, float32, float16 or bfloat16)"));
  }
  if (spec.batch_size < 0) return FieldError("batch_size", "must be >= 0");
  return absl::OkStatus();
}

}  // namespace prunerd
