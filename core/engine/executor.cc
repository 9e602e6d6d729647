#include "core/engine/executor.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/layer_transfer.h"
#include "core/engine/torch_util.h"

namespace prunerd {
namespace {

// One pass of the layer-sequential loop over `model`. `init_layers`: the InitPass result, whose
// layer l is handed to the pruner and then released.
absl::StatusOr<ExecutorResult> RunPass(LlamaModel& model, const at::Tensor& tokens,
                                       LayerPruner& pruner, const SparsityPattern& pattern,
                                       const ForwardOptions& opts, const LayerProgress& progress,
                                       std::vector<LayerWeights>* init_layers) {
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
    inps = Embed(model, tokens, opts.device, opts.dtype);
    outs = at::empty_like(inps);
  }
  const RopeCache rope = MakeRope(c, t, opts.device, opts.dtype);
  LayerTransfer transfer(model, opts.device, opts.dtype);

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const auto layer_start = std::chrono::steady_clock::now();
    LayerWeights w;
    timer.Time("load", [&] { w = transfer.Load(l); });
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
                     .timer = &timer,
                     .init_weights = init_layers ? &(*init_layers)[l] : nullptr};
    if (absl::Status s = pruner.PruneLayer(ctx); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("layer ", l, ": ", s.message()));
    }
    if (init_layers) (*init_layers)[l] = LayerWeights();  // host memory back as we go
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
      std::vector<at::Tensor> zeros;
      for (const at::Tensor& p : w.proj) zeros.push_back((p == 0).sum());
      at::Tensor counts = at::stack(zeros).to(at::kCPU);  // one device sync, not seven
      for (size_t i = 0; i < w.proj.size(); ++i) {
        rec.zeros[i] = counts[static_cast<int64_t>(i)].item<int64_t>();
        rec.numel[i] = w.proj[i].numel();
      }
      transfer.Store(l, w);
    });
    rec.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - layer_start).count();
    result.layers.push_back(rec);
    if (progress && !progress(l, c.num_hidden_layers)) {
      (void)transfer.Finish();  // the layers pruned so far are written back whole
      inps = at::Tensor();
      outs = at::Tensor();
      ReleaseDeviceCache(opts.device);
      return absl::CancelledError(
          absl::StrCat("cancelled after layer ", l + 1, " of ", c.num_hidden_layers));
    }
  }
  absl::Status stored = absl::OkStatus();
  timer.Time("store", [&] { stored = transfer.Finish(); });
  if (!stored.ok()) return stored;
  result.stage_seconds = timer.seconds();
  result.peak_device_bytes = DevicePeakBytes(opts.device);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace

absl::StatusOr<ExecutorResult> PruneLayerwise(LlamaModel& model, const at::Tensor& tokens,
                                              LayerPruner& pruner, const SparsityPattern& pattern,
                                              const ForwardOptions& opts,
                                              const LayerProgress& progress) {
  LayerPruner* init = pruner.InitPass();
  if (init == nullptr) return RunPass(model, tokens, pruner, pattern, opts, progress, nullptr);
  // Two passes, progress counted over both: the initializer over the whole model on its own
  // stream (a shallow copy: its pruned layers replace the copy's tensors, never the model's),
  // then the method on top of it.
  auto step = [&progress](int64_t offset) -> LayerProgress {
    if (!progress) return nullptr;
    return [&progress, offset](int64_t l, int64_t n) { return progress(offset * n + l, 2 * n); };
  };
  LlamaModel init_model = model;
  ASSIGN_OR_RETURN(ExecutorResult first,
                   RunPass(init_model, tokens, *init, pattern, opts, step(0), nullptr));
  ASSIGN_OR_RETURN(ExecutorResult result,
                   RunPass(model, tokens, pruner, pattern, opts, step(1), &init_model.layers));
  for (const auto& [stage, seconds] : first.stage_seconds) {
    result.stage_seconds["init_" + stage] += seconds;
  }
  for (size_t l = 0; l < result.layers.size() && l < first.layers.size(); ++l) {
    result.layers[l].seconds += first.layers[l].seconds;
  }
  result.seconds += first.seconds;
  result.peak_device_bytes = std::max(result.peak_device_bytes, first.peak_device_bytes);
  return result;
}

}  // namespace prunerd
