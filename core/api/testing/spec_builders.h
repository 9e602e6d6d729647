// File: spec_builders.h  (test-only)
//
// The spec's option messages from designated initializers, for tests that build many of them:
// each struct starts at the documented defaults (core/api/job_spec.h, WithDefaults) and
// converts to its proto.
//
//   BarberLayer layer(ctx, dense, BarberOpts{.tau = 0.1, .granularity = kBlock}, tuning);
//   PlanTransAct(config, TransActOpts{.attn_ratio = 0.25});
//   v1::JobSpec s = MethodSpec(v1::METHOD_WANDA, {.ratio = 0.5, .n = 2, .m = 4});
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>

#include "core/api/job_spec.h"
#include "prunerd/v1/spec.pb.h"

namespace prunerd {

struct BarberOpts {
  v1::Method init = v1::METHOD_WANDA;
  double tau = kDefaultBarberTau;
  v1::BarberGranularity granularity = v1::BARBER_GRANULARITY_OUTPUT1;
  v1::BarberMetric metric = v1::BARBER_METRIC_WD;
  bool retain_reconstruction = false;
  v1::GradPrecision grad_precision = v1::GRAD_PRECISION_AUTO;
  bool measure_block_mse = true;

  operator v1::BarberOptions() const {  // NOLINT: implicit by design
    v1::BarberOptions o;
    o.set_init(init);
    o.set_tau(tau);
    o.set_granularity(granularity);
    o.set_metric(metric);
    o.set_retain_reconstruction(retain_reconstruction);
    o.set_grad_precision(grad_precision);
    o.set_skip_block_mse(!measure_block_mse);
    return o;
  }
};

struct SparseGptOpts {
  double percdamp = kDefaultPercdamp;
  int64_t blocksize = kDefaultBlocksize;

  operator v1::SparseGptOptions() const {  // NOLINT: implicit by design
    v1::SparseGptOptions o;
    o.set_percdamp(percdamp);
    o.set_blocksize(blocksize);
    return o;
  }
};

struct TransActOpts {
  double attn_ratio = kDefaultTransActRatio;
  double mlp_ratio = kDefaultTransActRatio;
  int64_t attn_dim = 0;
  int64_t mlp_dim = 0;
  int shots = 1;
  v1::GqaMode gqa_mode = v1::GQA_MODE_KV_GROUPS;

  operator v1::TransActOptions() const {  // NOLINT: implicit by design
    v1::TransActOptions o;
    o.set_attn_ratio(attn_ratio);
    o.set_mlp_ratio(mlp_ratio);
    o.set_attn_dim(attn_dim);
    o.set_mlp_dim(mlp_dim);
    o.set_shots(shots);
    o.set_gqa_mode(gqa_mode);
    return o;
  }
};

// A spec of `method` with `pattern` as its target (N:M when pattern.m > 0); no paths.
inline v1::JobSpec MethodSpec(v1::Method method, const SparsityPattern& pattern) {
  v1::JobSpec s;
  s.set_method(method);
  if (pattern.is_nm()) {
    s.mutable_pattern()->set_n(pattern.n);
    s.mutable_pattern()->set_m(pattern.m);
  } else {
    s.set_ratio(pattern.ratio);
  }
  return s;
}

}  // namespace prunerd
