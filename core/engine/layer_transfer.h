// File: layer_transfer.h  (internal to core/engine: includes ATen)
//
// Moves decoder layers between host memory and the device for the layer-sequential loop
// (executor.cc). On a CUDA device the host side of every transfer (reading the mmapped
// checkpoint; filling fresh host memory with the pruned weights) runs on a background thread
// through pinned staging buffers, and the device side is an asynchronous copy on the compute
// stream, so the GPU never waits for page faults or pageable copies. (Measured on an H100: a
// synchronous pageable store of a 7B layer, 400 MB, took 0.36 s, 11 s of a 31 s Wanda job.)
// Layer l + 1 is read from the host while layer l is being pruned. On the CPU the transfers are
// plain copies.
//
// Use, per layer l in order: w = Load(l); ...prune w...; Store(l, w). Finish() waits for every
// queued store and reports a failure of the background work; the destructor waits too.
//
// Memory: 2 pinned buffers of one layer's projections (one for loads, one for stores), taken
// from the CUDA runtime by the background thread while the device starts on layer 0. If they
// cannot be had, the transfers fall back to plain synchronous copies.
//
// Thread-safety: one thread drives it. The background thread reads model.layers[l] of the
// layers being loaded and replaces model.layers[l] of the layers stored; the driving thread
// must not touch a stored layer's host weights until Finish() has returned.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "core/engine/llama_model.h"

namespace prunerd {

class LayerTransfer {
 public:
  // `dtype`: the compute dtype of the layers on the device; stores go back in each host
  // tensor's own dtype.
  LayerTransfer(LlamaModel& model, const at::Device& device, at::ScalarType dtype);
  ~LayerTransfer();
  LayerTransfer(const LayerTransfer&) = delete;
  LayerTransfer& operator=(const LayerTransfer&) = delete;

  // Layer `layer` on the device in the compute dtype: fresh tensors, safe to modify.
  LayerWeights Load(int64_t layer);
  // Queues the (pruned) projections of `device_weights` to replace model.layers[layer]'s.
  void Store(int64_t layer, const LayerWeights& device_weights);
  // Waits for all queued work; the first failure of the background work, if any.
  absl::Status Finish();

 private:
  class Worker;
  struct Slot {
    at::Tensor bytes;                    // pinned staging, one layer's projections
    std::function<void()> device_done;   // the device's last copy from/to `bytes` has run
    std::shared_future<void> host_done;  // the background thread is done with `bytes`
    int64_t layer = -1;                  // the layer whose load was started into it
  };

  // Whether transfers go through the pinned buffers (false once pinning them has failed).
  bool Staged();
  void Prefetch(int64_t layer);
  // Byte offsets of a layer's projections in a staging buffer.
  std::array<int64_t, 8> Offsets(const LayerWeights& host) const;

  LlamaModel& model_;
  at::Device device_;
  at::ScalarType dtype_;
  bool staged_ = false;  // CUDA: through pinned buffers; otherwise plain copies
  Slot load_slot_;
  Slot store_slot_;
  std::shared_future<void> allocated_;  // both slots' buffers exist
  std::vector<std::shared_future<void>> pending_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace prunerd
