// File: magnitude_wanda.h  (internal to core/: includes ATen)
//
// The two pruners that need no weight update (methods.md §2, §3), and the score/mask helpers
// LLM-Barber reuses for its initial mask.
//  - Magnitude: score |W|; unstructured per matrix (exactly floor(numel·r) pruned) or N:M.
//  - Wanda: score |W_ij|·‖X_j‖₂ over all calibration tokens; unstructured per output row
//    (exactly floor(in·r) pruned per row, stable order) or N:M. Statistics come from the dense
//    layer (all sub-layers measured before any is pruned), as the reference code does.
// Kept weights keep their dense values bit for bit.
//
// Thread-safety: one pruner per job.
#pragma once

#include <ATen/ATen.h>

#include <memory>

#include "core/api/job_spec.h"
#include "core/methods/input_stats.h"
#include "core/methods/layer_pruner.h"

namespace prunerd {

// Masks (true = prune) for `w` by the method's rule under `pattern`.
at::Tensor MagnitudeMask(const at::Tensor& w, const SparsityPattern& pattern);
// `col_sq_sum`: Σ x_j² over calibration tokens, [in] fp32.
at::Tensor WandaScores(const at::Tensor& w, const at::Tensor& col_sq_sum);
at::Tensor WandaMask(const at::Tensor& scores, const SparsityPattern& pattern);

std::unique_ptr<LayerPruner> MakeMagnitudePruner();
std::unique_ptr<LayerPruner> MakeWandaPruner();

}  // namespace prunerd
