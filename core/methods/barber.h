// File: barber.h  (internal to core/: includes ATen)
//
// LLM-Barber (Su et al. 2024; methods.md §5, §8 items 1–5): a mask rebuild on top of an
// initial pruner (magnitude, wanda or sparsegpt). As the reference code, Barber starts from
// the initializer's complete sparse model: the executor first runs the init pruner over the
// whole model (InitPass; its own pruned stream feeds its next layer), then, per decoder layer
// on Barber's stream (the outputs of the rebuilt layers):
//   0. the dense layer and the initializer's sparse layer l side by side on the device;
//   1. attention block (q, k, v, o): on the sparse stream, the block input (the normed layer
//      input) and the sparse block output; the dense block (fp32 by default) on the same
//      input; per-sequence squared-error loss, per-sequence gradients w.r.t. the dense
//      weights (barber_gradients.h), score S = |W_dense|·sqrt(mean_s G_s²) (metric wd; w, d);
//      mask rebuild with k = floor(τ·R) swaps per comparison group (barber_mask_rebuild.h);
//      kept weights reset to their dense values (unless retain_reconstruction, sparsegpt init:
//      kept weights keep SparseGPT's values, revived ones get the dense value);
//   2. MLP block (gate, up, down), the same, its input computed with the REBUILT attention.
// The executor then recomputes the layer's outputs, so the next layer sees the rebuilt layer.
//
// Differences from the reference code (documented in the report too):
//  - swaps are by index (top-k of the pruned list, bottom-k of the kept list), so group counts
//    are exact even with tied scores; the number of groups where the reference's strict
//    thresholds would have decided differently is reported ("reference_threshold_differences");
//  - the block loss is a sum, not a mean (a constant factor: rankings unchanged);
//  - ratio 0 (unstructured) leaves the layer untouched without computing anything.
//
// Report (PruneReport.barber): swap counts, reference differences, and per layer and block
// the block-output MSE on the calibration set before and after the rebuild (methods.md §9.1
// item 8, a soft check), and where the time went.
//
// Thread-safety: one pruner per job; BarberLayer is used by one thread.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include <optional>

#include "absl/status/status.h"
#include "core/api/job_spec.h"
#include "core/methods/barber_mask_rebuild.h"
#include "core/methods/layer_pruner.h"

namespace prunerd {

// Engineering knobs that are not part of the method (BarberTuningFor derives them from the
// job's options).
struct BarberTuning {
  // Dtype of the dense block's forward/backward: fp32 as the reference does, or bf16 operands
  // (the loss and the Σ G² accumulators stay fp32) for large models on a GPU.
  at::ScalarType grad_dtype = at::kFloat;
  // With grad_dtype fp32 on CUDA: allow TF32 tensor-core matmuls in the gradient passes
  // (10-bit operands, fp32 accumulation; not exact for fp32 intermediates).
  bool tf32 = false;
  // Measure the block MSE after each rebuild (one extra sparse and dense forward per block).
  bool measure_block_mse = true;
  // Sequences per gradient pass; 0 = max(1, executor batch / 4) (the backward holds about
  // 4× the activations of a forward).
  int64_t grad_batch = 0;
};

// The tuning a job asks for (v1::BarberOptions::grad_precision, measure_block_mse), for layers
// computed in `compute_dtype`.
BarberTuning BarberTuningFor(const v1::BarberOptions& options, at::ScalarType compute_dtype);

struct BarberBlockRecord {
  double mse_before = std::numeric_limits<double>::quiet_NaN();  // init mask vs dense
  double mse_after = std::numeric_limits<double>::quiet_NaN();   // rebuilt vs dense
  RebuildCounts counts;
  double grad_seconds = 0;     // sparse forward + dense forward/backward + Σ G²
  double rebuild_seconds = 0;  // scores, mask rebuild, weight reset
  double mse_seconds = 0;      // the after-MSE pass
};

// The rebuild of one layer whose weights (ctx.weights) the init pruner has already pruned.
class BarberLayer {
 public:
  // `dense`: the layer before pruning, on ctx.device in ctx.dtype. Both must outlive this.
  BarberLayer(LayerContext& ctx, const LayerWeights& dense, const v1::BarberOptions& options,
              const BarberTuning& tuning);

  // Rebuilds q/k/v/o in ctx.weights.
  absl::Status RebuildAttention();
  // Rebuilds gate/up/down; the MLP input is computed with the current (rebuilt) attention.
  absl::Status RebuildMlp();

  const BarberBlockRecord& attention() const { return records_[0]; }
  const BarberBlockRecord& mlp() const { return records_[1]; }
  // The scores and the masks before the rebuild of the last rebuilt block, in block order
  // (q, k, v, o or gate, up, down), for tests.
  const std::vector<at::Tensor>& last_scores() const { return last_scores_; }
  const std::vector<at::Tensor>& last_masks_before() const { return last_masks_before_; }

 private:
  bool NeedGradients() const;
  void ForEachGradBatch(const std::function<void(const at::Tensor& x)>& fn) const;
  absl::Status Rebuild(const std::vector<Proj>& projs, const std::vector<at::Tensor>& grad_sq,
                       BarberBlockRecord& record);

  LayerContext& ctx_;
  const LayerWeights& dense_;
  v1::BarberOptions options_;
  BarberTuning tuning_;
  LayerWeights dense_grad_;  // dense projections in tuning_.grad_dtype
  RopeCache rope_grad_;
  int64_t grad_batch_ = 1;
  std::array<BarberBlockRecord, 2> records_;
  std::vector<at::Tensor> last_scores_, last_masks_before_;
};

// `init` prunes each layer first (magnitude, wanda or sparsegpt pruner). Without `tuning`,
// each layer's comes from BarberTuningFor(options, the layer's compute dtype).
std::unique_ptr<LayerPruner> MakeBarberPruner(const v1::BarberOptions& options,
                                              std::unique_ptr<LayerPruner> init,
                                              std::optional<BarberTuning> tuning = std::nullopt);

}  // namespace prunerd
