#include "core/methods/layer_pruner.h"

#include <c10/core/InferenceMode.h>

#include <chrono>

#include "core/engine/torch_util.h"

namespace prunerd {

void StageTimer::Time(const std::string& stage, const std::function<void()>& fn) {
  Synchronize(device_);
  const auto start = std::chrono::steady_clock::now();
  fn();
  Synchronize(device_);
  seconds_[stage] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void LayerContext::ForEachBatch(
    const std::function<void(const at::Tensor& x, int64_t first)>& fn) const {
  const int64_t n = inputs->size(0);
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    fn(inputs->narrow(0, b0, std::min(batch, n - b0)), b0);
  }
}

void LayerContext::RunTaps(const TapFn& tap) const {
  c10::InferenceMode inference;
  const LayerWeights& w = *weights;
  const LlamaConfig& c = *config;
  ForEachBatch([&](const at::Tensor& x, int64_t) {
    at::Tensor h = x + Attention(w, RmsNorm(x, w.input_norm, c.rms_norm_eps), *rope, c, &tap);
    Mlp(w, RmsNorm(h, w.post_norm, c.rms_norm_eps), &tap, /*skip_down=*/true);
  });
}

}  // namespace prunerd
