// File: transact.h  (internal to core/: includes ATen)
//
// TransAct structured pruning (methods.md §6): shrinks the attention heads and the MLP
// intermediate channels of every layer, keeping the hidden size. Scores are the L2 norms over
// all calibration tokens of each input channel of o_proj and down_proj; heads are chosen by
// mean + (10/head_dim)·max of their channel scores; MLP channels by top-k; the same dims in
// every layer, each layer with its own indices. GQA: whole KV groups, or query heads inside
// each group. K shots re-score between slicings.
//
// TransActPrune slices `model` in place (its layers and config) and returns the method's report
// details (kept indices per layer, the dims per shot, KV cache size).
//
// Thread-safety: one call per model at a time.
#pragma once

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "core/api/job_spec.h"
#include "core/engine/llama_model.h"
#include "core/engine/perplexity.h"

namespace prunerd {

absl::StatusOr<nlohmann::json> TransActPrune(LlamaModel& model, const at::Tensor& calib_tokens,
                                             const TransActOptions& options,
                                             const ForwardOptions& fwd,
                                             const LayerProgress& progress);

}  // namespace prunerd
