// File: input_stats.h  (internal to core/: includes ATen)
//
// Statistics of the inputs of a layer's linear layers over the calibration set, in fp32:
// per input channel Σ x² (Wanda's ‖X_j‖²) and optionally the Gram matrix Σ x xᵀ (SparseGPT's
// Hessian up to its 2/n factor). q/k/v share one input stream (kAttnIn), gate/up another
// (kMlpIn); o_proj reads kAttnCtx and down_proj kMlpAct.
//
// Thread-safety: not synchronised; one per layer.
#pragma once

#include <ATen/ATen.h>

#include <array>

#include "core/engine/llama_model.h"
#include "core/methods/layer_pruner.h"

namespace prunerd {

Tap InputTapOf(Proj p);

struct InputStats {
  std::array<at::Tensor, 4> sq_sum;  // [in] per tap
  std::array<at::Tensor, 4> gram;    // [in, in] per tap (when collected)
  int64_t tokens = 0;

  // Runs the (dense) layer over the calibration inputs once.
  static InputStats Collect(const LayerContext& ctx, bool with_gram);

  const at::Tensor& SqSum(Proj p) const { return sq_sum[static_cast<size_t>(InputTapOf(p))]; }
  const at::Tensor& Gram(Proj p) const { return gram[static_cast<size_t>(InputTapOf(p))]; }
};

}  // namespace prunerd
