// File: executor.h  (internal to core/: includes ATen)
//
// The layer-sequential pruning loop (methods.md §1, DESIGN.md §2): embed the calibration
// windows once (the inputs of layer 0, kept on the device in the compute dtype), then for each
// decoder layer: copy it to the device, let the LayerPruner collect statistics and prune it,
// recompute the layer's outputs with the pruned weights (they become the next layer's inputs),
// and write the pruned layer back to the host in the model's dtype (layer_transfer.h: on CUDA
// the host side runs in the background, overlapping the next layer). The device holds one layer
// plus two activation buffers [N, T, hidden]; the model stays mmapped / on the host.
//
// A pruner with an InitPass (Barber) takes two passes: its initializer over the whole model,
// then the method on top of that result; progress then counts 2 × layers steps.
//
// Progress is reported after every layer (it must not read model.layers: on CUDA the pruned
// layers are written back by a background thread); returning false stops the loop with Cancelled
// within one layer, and the device memory is released.
//
// Thread-safety: one call per model at a time.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/job_spec.h"
#include "core/engine/llama_model.h"
#include "core/engine/perplexity.h"
#include "core/methods/layer_pruner.h"

namespace prunerd {

struct LayerRecord {
  double seconds = 0;
  std::array<int64_t, 7> zeros{};  // per Proj, after pruning
  std::array<int64_t, 7> numel{};
};

struct ExecutorResult {
  std::vector<LayerRecord> layers;
  std::map<std::string, double> stage_seconds;  // summed over layers
  double seconds = 0;
  int64_t peak_device_bytes = 0;
};

// Prunes every layer of `model` in place. `tokens`: calibration windows [N, T] int64.
absl::StatusOr<ExecutorResult> PruneLayerwise(LlamaModel& model, const at::Tensor& tokens,
                                              LayerPruner& pruner, const SparsityPattern& pattern,
                                              const ForwardOptions& opts,
                                              const LayerProgress& progress);

}  // namespace prunerd
