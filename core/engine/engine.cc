// Implements core/api/engine.h: evaluation and device queries. (RunPruneJob is in
// prune_job.cc.)
#include "core/api/engine.h"

#include <torch/version.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/cuda_util.h"
#include "core/engine/model_loader.h"
#include "core/engine/perplexity.h"
#include "core/engine/torch_util.h"

namespace prunerd {

absl::StatusOr<EvalResult> EvaluatePerplexity(const EvalSpec& spec,
                                              const ProgressCallback& progress) {
  const auto start = std::chrono::steady_clock::now();
  if (spec.seqlen < 0 || spec.seqlen == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("seqlen: must be >= 2 (or 0 for the model's default), got ", spec.seqlen));
  }
  if (spec.max_windows < 0) {
    return absl::InvalidArgumentError("max_windows: must be >= 0");
  }
  ASSIGN_OR_RETURN(at::Device device, ParseDevice(spec.device));
  ASSIGN_OR_RETURN(LoadedModel lm, OpenModel(spec.model_path, spec.tokenizer_path));
  ASSIGN_OR_RETURN(at::ScalarType dtype,
                   ResolveComputeDType(spec.dtype, lm.model.config.torch_dtype, device));
  auto report = [&](v1::Stage stage, int64_t layer, int64_t layers, double fraction,
                    std::string message) {
    if (!progress) return true;
    v1::EngineProgress p;
    p.set_stage(stage);
    p.set_layer(layer);
    p.set_layers(layers);
    p.set_fraction(fraction);
    p.set_message(std::move(message));
    return progress(p);
  };
  if (!report(v1::STAGE_LOAD, 0, 0, 0.0, "model and tokenizer loaded")) {
    return absl::CancelledError("cancelled");
  }
  ASSIGN_OR_RETURN(TokenizedCorpus corpus, LoadCorpus(spec.data_path, lm.tokenizer.get(),
                                                      lm.model.config.vocab_size));
  const LlamaConfig& config = lm.model.config;
  const int64_t seqlen =
      spec.seqlen == 0 ? std::min<int64_t>(2048, config.max_position_embeddings) : spec.seqlen;
  if (seqlen > config.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrCat("seqlen: ", seqlen, " exceeds the model's max_position_embeddings (",
                     config.max_position_embeddings, ")"));
  }
  ASSIGN_OR_RETURN(TokenWindows windows, EvalWindows(corpus, seqlen, spec.max_windows));

  EvalResult result;
  result.windows = windows.windows;
  result.seqlen = windows.seqlen;
  result.corpus_tokens = corpus.num_tokens();
  ForwardOptions opts{.device = device, .dtype = dtype, .batch_size = spec.batch_size};
  const int64_t layers = lm.model.config.num_hidden_layers;
  LayerProgress on_layer = [&](int64_t layer, int64_t n) {
    return report(v1::STAGE_EVAL_DENSE, layer, layers, double(layer + 1) / double(n + 1),
                  absl::StrCat("layer ", layer + 1, "/", n));
  };
  absl::StatusOr<std::vector<double>> nll;
  RETURN_IF_ERROR(TorchCall("evaluation", [&] {
    nll = WindowNll(lm.model, WindowsTensor(windows), opts, on_layer);
  }));
  if (!nll.ok()) {
    ReleaseDeviceCache(device);
    return nll.status();
  }
  double sum = 0;
  for (double v : *nll) sum += v;
  result.window_nll = std::move(*nll);
  result.mean_nll = sum / static_cast<double>(result.window_nll.size());
  result.perplexity = std::exp(result.mean_nll);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ReleaseDeviceCache(device);
  if (progress) {
    v1::EngineProgress p;
    p.set_stage(v1::STAGE_DONE);
    p.set_layer(layers);
    p.set_layers(layers);
    p.set_fraction(1.0);
    p.set_message("done");
    v1::Evaluation* e = p.mutable_evaluation();
    e->set_target(v1::EVAL_TARGET_DENSE);
    e->set_perplexity(result.perplexity);
    e->set_windows(result.windows);
    e->set_seqlen(result.seqlen);
    e->set_seconds(result.seconds);
    progress(p);
  }
  return result;
}

std::vector<DeviceInfo> ListDevices() {
  std::vector<DeviceInfo> out;
  out.push_back(DeviceInfo{.name = "cpu", .description = "host CPU"});
  for (int i = 0; i < CudaDeviceCount(); ++i) {
    DeviceInfo d{.name = absl::StrCat("cuda:", i), .description = CudaDeviceName(i)};
    CudaMemInfo(i, &d.free_memory, &d.total_memory);
    out.push_back(std::move(d));
  }
  return out;
}

int64_t DeviceMemoryAllocated(const std::string& device) {
  auto d = ParseDevice(device);
  if (!d.ok()) return 0;
  return DeviceBytesAllocated(*d);
}

std::string TorchVersion() { return TORCH_VERSION; }

}  // namespace prunerd
