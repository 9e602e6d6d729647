// File: spec_flags.h
//
// The job spec's command-line flags, defined once for every command that builds a spec
// (`prunectl submit`, `prunerd oneshot`, and later `prunectl plan`): the same names, help texts
// and parsing everywhere. Flags write only what was given, so they override a spec that came
// from elsewhere (a spec file) field by field.
//
//   ArgParser p("prunectl submit", "...");
//   SpecFlags flags(p);                 // registers --model, --method, --ratio, ...
//   RETURN_IF_ERROR(p.Parse(args));
//   v1::JobSpec spec;                   // or a spec read from a file
//   RETURN_IF_ERROR(flags.ApplyTo(&spec));
//
// Errors name the flag ("--method: unknown value \"wandaa\" (expected magnitude, ...)").
//
// Thread-safety: one SpecFlags per parser and parse.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/common/arg_parser.h"
#include "prunerd/v1/spec.pb.h"

namespace prunerd {

class SpecFlags {
 public:
  // Registers the spec's flags on `parser`, which must outlive this object.
  explicit SpecFlags(ArgParser& parser);
  SpecFlags(const SpecFlags&) = delete;
  SpecFlags& operator=(const SpecFlags&) = delete;

  // Writes every flag that was given into `spec`; leaves the other fields as they are.
  absl::Status ApplyTo(v1::JobSpec* spec) const;

  // The names of the flags this class registers, in registration order (without "--").
  static std::vector<std::string> FlagNames();

 private:
  bool Set(const char* name) const { return parser_.WasSet(name); }

  ArgParser& parser_;
  std::string model_, tokenizer_, method_, pattern_, calib_dataset_, calib_file_, eval_dataset_,
      eval_file_, dtype_, barber_init_, barber_granularity_, barber_metric_, barber_grad_precision_,
      gqa_mode_;
  double ratio_ = 0.5, barber_tau_ = 0.01, percdamp_ = 0.01, attn_ratio_ = 0.5, mlp_ratio_ = 0.5;
  int64_t calib_samples_ = 0, calib_seqlen_ = 0, calib_seed_ = 0, eval_seqlen_ = 0,
          eval_max_windows_ = 0, batch_size_ = 0, priority_ = 0, blocksize_ = 0, attn_dim_ = 0,
          mlp_dim_ = 0, shots_ = 0;
  bool skip_dense_ = false, skip_calib_eval_ = false, skip_model_ = false, barber_retain_ = false,
       barber_skip_mse_ = false;
  std::vector<std::string> labels_;
};

}  // namespace prunerd
