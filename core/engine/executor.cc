#include "core/engine/executor.h"

#include <c10/core/InferenceMode.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/engine/torch_util.h"
#include "core/methods/masks.h"

namespace prunerd {

absl::StatusOr<ExecutorResult> PruneLayerwise(LlamaModel& model, const at::Tensor& tokens,
                                              LayerPruner& pruner, const SparsityPattern& pattern,
                                              const ForwardOptions& opts,
                                              const LayerProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  const LlamaConfig& c = model.config;
  const int64_t n = tokens.size(0), t = tokens.size(1);
  const int64_t batch = AutoBatch(opts.batch_size, t, opts.device);
  ResetDevicePeak(opts.device);

  ExecutorResult result;
  StageTimer timer(opts.device);
  at::Tensor inps, outs;
  {
    c10::InferenceMode inference;
    inps = at::empty({n, t, c.hidden_size},
                     at::TensorOptions().dtype(opts.dtype).device(opts.device));
    for (int64_t b0 = 0; b0 < n; b0 += batch) {
      const int64_t bs = std::min(batch, n - b0);
      inps.narrow(0, b0, bs).copy_(Embed(model, tokens.narrow(0, b0, bs), opts.device, opts.dtype));
    }
    outs = at::empty_like(inps);
  }
  const RopeCache rope = MakeRope(c, t, opts.device, opts.dtype);

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const auto layer_start = std::chrono::steady_clock::now();
    LayerWeights w;
    timer.Time("load", [&] { w = model.layers[l].To(opts.device, opts.dtype); });
    LayerContext ctx{.layer = l,
                     .layers = c.num_hidden_layers,
                     .config = &c,
                     .weights = &w,
                     .inputs = &inps,
                     .rope = &rope,
                     .batch = batch,
                     .device = opts.device,
                     .dtype = opts.dtype,
                     .pattern = &pattern,
                     .timer = &timer};
    if (absl::Status s = pruner.PruneLayer(ctx); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("layer ", l, ": ", s.message()));
    }
    timer.Time("recompute", [&] {
      c10::InferenceMode inference;
      for (int64_t b0 = 0; b0 < n; b0 += batch) {
        const int64_t bs = std::min(batch, n - b0);
        outs.narrow(0, b0, bs).copy_(DecoderLayer(w, inps.narrow(0, b0, bs), rope, c));
      }
    });
    std::swap(inps, outs);

    LayerRecord rec;
    timer.Time("store", [&] {
      for (Proj p : kAllProjs) {
        const size_t i = static_cast<size_t>(p);
        rec.zeros[i] = CountZeros(w[p]);
        rec.numel[i] = w[p].numel();
      }
      const LayerWeights& host = model.layers[l];
      LayerWeights stored;
      stored.input_norm = host.input_norm;  // norms never change
      stored.post_norm = host.post_norm;
      for (Proj p : kAllProjs) {
        stored[p] = w[p].to(at::kCPU, host[p].scalar_type(), false, /*copy=*/true);
      }
      model.layers[l] = std::move(stored);
    });
    rec.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - layer_start).count();
    result.layers.push_back(rec);
    if (progress && !progress(l, c.num_hidden_layers)) {
      inps = at::Tensor();
      outs = at::Tensor();
      ReleaseDeviceCache(opts.device);
      return absl::CancelledError(absl::StrCat("cancelled after layer ", l + 1, " of ",
                                               c.num_hidden_layers));
    }
  }
  result.stage_seconds = timer.seconds();
  result.peak_device_bytes = DevicePeakBytes(opts.device);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace prunerd
