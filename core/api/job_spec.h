// File: job_spec.h
//
// The job spec (prunerd.v1.JobSpec, proto/prunerd/v1/spec.proto) as the engine and every front
// end use it: the names of its enum values on command lines and in messages, its defaults, and
// its validation. The proto is the one definition of the spec; this file adds no second copy,
// only functions over it.
//
//   ASSIGN_OR_RETURN(v1::Method m, ParseEnum<v1::Method>("wanda", "method"));  // METHOD_WANDA
//   EnumName(v1::METHOD_SPARSEGPT)                                        // "sparsegpt"
//   v1::JobSpec spec = WithDefaults(request.spec());   // every default written out
//   RETURN_IF_ERROR(ValidateJobSpec(spec));            // every bad field, named, at once
//   SparsityPattern p = PatternOf(spec);               // {ratio 0.5, n 2, m 4}
//
// Field names in errors are relative to the spec ("ratio", "barber.tau"); the daemon prefixes
// them with "spec.".
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/generated_enum_reflection.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prunerd/v1/spec.pb.h"

namespace prunerd {

// ---- Enum names ---------------------------------------------------------------------------
// An enum value's short name: the value name without the prefix all the enum's values share,
// in lower case ("METHOD_WANDA" -> "wanda", "DTYPE_BFLOAT16" -> "bfloat16").
std::string EnumValueShortName(const google::protobuf::EnumDescriptor* type, int value);
// Parses a short name or a full value name, case-insensitively. InvalidArgument naming `field`
// and listing the choices (the *_UNSPECIFIED value is not one).
absl::StatusOr<int> ParseEnumValue(const google::protobuf::EnumDescriptor* type,
                                   absl::string_view text, absl::string_view field);
// The short names of the enum's values, UNSPECIFIED excluded, comma-separated: "magnitude,
// wanda, sparsegpt, barber, transact".
std::string EnumChoices(const google::protobuf::EnumDescriptor* type);

template <typename E>
std::string EnumName(E value) {
  return EnumValueShortName(google::protobuf::GetEnumDescriptor<E>(), static_cast<int>(value));
}
template <typename E>
absl::StatusOr<E> ParseEnum(absl::string_view text, absl::string_view field) {
  absl::StatusOr<int> v = ParseEnumValue(google::protobuf::GetEnumDescriptor<E>(), text, field);
  if (!v.ok()) return v.status();
  return static_cast<E>(*v);
}
template <typename E>
std::string EnumChoices() {
  return EnumChoices(google::protobuf::GetEnumDescriptor<E>());
}
// Every value but UNSPECIFIED, in declaration order.
template <typename E>
std::vector<E> EnumValues() {
  std::vector<E> out;
  const google::protobuf::EnumDescriptor* d = google::protobuf::GetEnumDescriptor<E>();
  for (int i = 0; i < d->value_count(); ++i) {
    const std::string& n = d->value(i)->name();
    if (n.size() >= 12 && n.compare(n.size() - 12, 12, "_UNSPECIFIED") == 0) continue;
    out.push_back(static_cast<E>(d->value(i)->number()));
  }
  return out;
}

// ---- Sparsity -----------------------------------------------------------------------------
// The spec's sparsity target as the methods use it: unstructured at `ratio`, or N:M (N zeros in
// every M consecutive input columns) when m > 0.
struct SparsityPattern {
  double ratio = 0.5;
  int n = 0;
  int m = 0;
  bool is_nm() const { return m > 0; }
  double effective_ratio() const { return is_nm() ? double(n) / m : ratio; }
};
SparsityPattern PatternOf(const v1::JobSpec& spec);
// "2:4" -> {n: 2, m: 4}; InvalidArgument naming `field` otherwise.
absl::StatusOr<v1::NMPattern> ParseNMPattern(absl::string_view text, absl::string_view field);
// "2:4", or "unstructured".
std::string PatternName(const SparsityPattern& p);

// ---- Defaults -----------------------------------------------------------------------------
inline constexpr int64_t kDefaultCalibrationSamples = 128;
inline constexpr double kDefaultBarberTau = 0.01;
inline constexpr double kDefaultPercdamp = 0.01;
inline constexpr int64_t kDefaultBlocksize = 128;
inline constexpr double kDefaultTransActRatio = 0.5;
inline constexpr int32_t kMaxPriority = 1000;
inline constexpr int kMaxLabels = 32;
// Hard bounds checked before anything is allocated (the memory planner refines them per model
// and device): calibration windows, tokens per window, and their product.
inline constexpr int64_t kMaxCalibrationSamples = 1 << 16;
inline constexpr int64_t kMaxSeqlen = 1 << 20;
inline constexpr int64_t kMaxCalibrationTokens = int64_t{1} << 26;

// Label keys: 1-63 characters of [a-z0-9_.-/] (values: up to 256 bytes).
bool IsValidLabelKey(absl::string_view key);

// The spec with every documented default written out (barber.init wanda, tau 0.01, percdamp
// 0.01, blocksize 128, transact ratios 0.5 and 1 shot, 128 calibration windows), so that the
// engine reads values, never "unset means". Options of methods the job does not use are
// cleared. Idempotent.
v1::JobSpec WithDefaults(v1::JobSpec spec);

// True when the method reads calibration activations (all but magnitude).
bool UsesCalibration(v1::Method method);
// True when SparseGPT's options apply (sparsegpt, or barber with init sparsegpt).
bool UsesSparseGpt(const v1::JobSpec& spec);

// ---- Validation ---------------------------------------------------------------------------
struct FieldViolation {
  std::string field;        // "ratio", "barber.tau", "calibration.num_samples"
  std::string description;  // "must be in [0, 1), got 1.2"
};
// Everything wrong with the spec's values that can be found without touching files, in field
// order. Defaults apply to unset fields (the spec need not have been through WithDefaults).
std::vector<FieldViolation> SpecViolations(const v1::JobSpec& spec);
// InvalidArgument listing every violation ("ratio: must be ...; barber.tau: ..."), each field
// prefixed with `prefix` ("spec."); OK when there is none.
absl::Status ViolationsToStatus(const std::vector<FieldViolation>& violations,
                                absl::string_view prefix = "");
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

}  // namespace prunerd
