// File: layer_pruner.h  (internal to core/: includes ATen)
//
// The contract between the layer-sequential executor (core/engine/executor.h) and a pruning
// method. For each decoder layer the executor:
//   1. copies the layer to the device in the compute dtype (LayerContext::weights),
//   2. calls LayerPruner::PruneLayer(ctx): the method collects whatever statistics it needs by
//      running the layer over the calibration inputs (ctx.ForEachBatch, RunTaps), and prunes
//      ctx.weights in place (zeros, and for SparseGPT updated values);
//   3. recomputes the layer's outputs with the pruned weights, which become the next layer's
//      inputs, and writes the pruned layer back to the host in the model's dtype.
// Only q/k/v/o/gate/up/down may change; norms never do.
//
// A method that rebuilds on top of another method's complete result (Barber: "the sparse model
// from the initializer", methods.md §5.2) names that method in InitPass(). The executor then
// first runs the initializer over the whole model (on its own pruned stream), and hands its
// pruned layer l to PruneLayer as LayerContext::init_weights.
//
// Statistics are accumulated in fp32 whatever the compute dtype. Methods check for
// cancellation only through the executor (at layer boundaries), so PruneLayer runs to the end.
//
// Thread-safety: one LayerPruner per job, called from the job's thread.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "core/api/job_spec.h"
#include "core/engine/llama_model.h"
#include "prunerd/v1/engine.pb.h"

namespace prunerd {

// Named wall-clock timers, summed over layers for the report ("stats", "prune", ...).
class StageTimer {
 public:
  explicit StageTimer(const at::Device& device) : device_(device) {}
  // Adds the wall time of fn() (device-synchronised) to `stage`.
  void Time(const std::string& stage, const std::function<void()>& fn);
  const std::map<std::string, double>& seconds() const { return seconds_; }

 private:
  at::Device device_;
  std::map<std::string, double> seconds_;
};

struct LayerContext {
  int64_t layer = 0;
  int64_t layers = 0;
  const LlamaConfig* config = nullptr;
  LayerWeights* weights = nullptr;     // on the device, compute dtype; pruned in place
  const at::Tensor* inputs = nullptr;  // [N, T, hidden] this layer's calibration inputs
  const RopeCache* rope = nullptr;
  int64_t batch = 1;  // sequences per forward
  at::Device device = at::Device(at::kCPU);
  at::ScalarType dtype = at::kFloat;
  const SparsityPattern* pattern = nullptr;
  StageTimer* timer = nullptr;
  // Layer l as the InitPass() method pruned it: on the host, in the model's dtype (null when
  // the pruner has no InitPass).
  const LayerWeights* init_weights = nullptr;

  int64_t num_sequences() const { return inputs->size(0); }
  // Calls fn(x, first) for consecutive batches x = inputs[first : first + b].
  void ForEachBatch(const std::function<void(const at::Tensor& x, int64_t first)>& fn) const;
  // Runs the layer with the current weights over all calibration inputs, reporting every
  // linear input to `tap` (down_proj's output is skipped: only inputs are observed).
  void RunTaps(const TapFn& tap) const;
};

class LayerPruner {
 public:
  virtual ~LayerPruner() = default;
  virtual absl::Status PruneLayer(LayerContext& ctx) = 0;
  // The method whose whole-model result this one starts from (see above); null for none.
  virtual LayerPruner* InitPass() { return nullptr; }
  // Adds the method's figures to the job report (its sub-message: barber, sparsegpt, ...).
  virtual void Report(v1::PruneReport* report) const {}
};

}  // namespace prunerd
