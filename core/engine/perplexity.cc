#include "core/engine/perplexity.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace prunerd {

int64_t AutoBatch(int64_t requested, int64_t seqlen, const at::Device& device) {
  if (requested > 0) return requested;
  const int64_t budget = device.is_cuda() ? 32768 : 8192;
  return std::max<int64_t>(1, budget / std::max<int64_t>(1, seqlen));
}

at::Tensor WindowsTensor(const TokenWindows& windows) {
  return at::from_blob(const_cast<int32_t*>(windows.ids.data()), {windows.windows, windows.seqlen},
                       at::TensorOptions().dtype(at::kInt))
      .to(at::kLong);
}

namespace {

// Runs every decoder layer over the hidden states in place.
absl::Status RunLayers(const LlamaModel& model, at::Tensor& hidden, const ForwardOptions& opts,
                       int64_t batch, const LayerProgress& progress) {
  const LlamaConfig& c = model.config;
  const int64_t n = hidden.size(0);
  RopeCache rope = MakeRope(c, hidden.size(1), opts.device, opts.dtype);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights w = model.layers[l].To(opts.device, opts.dtype);
    for (int64_t b0 = 0; b0 < n; b0 += batch) {
      at::Tensor x = hidden.narrow(0, b0, std::min(batch, n - b0));
      x.copy_(DecoderLayer(w, x, rope, c));
    }
    if (progress && !progress(l, c.num_hidden_layers)) {
      return absl::CancelledError(absl::StrCat("cancelled after layer ", l));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<double>> WindowNll(const LlamaModel& model, const at::Tensor& tokens,
                                              const ForwardOptions& opts,
                                              const LayerProgress& progress) {
  c10::InferenceMode inference;
  const int64_t n = tokens.size(0), t = tokens.size(1);
  const int64_t batch = AutoBatch(opts.batch_size, t, opts.device);
  at::Tensor hidden = Embed(model, tokens, opts.device, opts.dtype);
  if (absl::Status s = RunLayers(model, hidden, opts, batch, progress); !s.ok()) return s;

  at::Tensor norm = model.final_norm.to(opts.device, opts.dtype);
  at::Tensor head = model.lm_head.to(opts.device, opts.dtype);
  // Logits in fp32 take T*vocab*4 bytes per sequence: bound a batch to ~512 MiB.
  const int64_t vocab = head.size(0);
  const int64_t head_batch =
      std::max<int64_t>(1, std::min<int64_t>(batch, (int64_t{512} << 20) / (t * vocab * 4)));
  at::Tensor targets = tokens.to(opts.device);
  std::vector<double> nll;
  nll.reserve(n);
  for (int64_t b0 = 0; b0 < n; b0 += head_batch) {
    const int64_t bs = std::min(head_batch, n - b0);
    at::Tensor h = RmsNorm(hidden.narrow(0, b0, bs), norm, model.config.rms_norm_eps);
    at::Tensor logits = at::linear(h.narrow(1, 0, t - 1), head).to(at::kFloat);
    at::Tensor logp = at::log_softmax(logits, -1);
    at::Tensor tgt = targets.narrow(0, b0, bs).narrow(1, 1, t - 1).unsqueeze(-1);
    at::Tensor window_nll = -logp.gather(-1, tgt).squeeze(-1).to(at::kDouble).mean(-1).cpu();
    const double* p = window_nll.data_ptr<double>();
    nll.insert(nll.end(), p, p + bs);
  }
  if (progress && !progress(model.config.num_hidden_layers, model.config.num_hidden_layers)) {
    return absl::CancelledError("cancelled");
  }
  return nll;
}

at::Tensor Logits(const LlamaModel& model, const at::Tensor& tokens, const ForwardOptions& opts) {
  c10::InferenceMode inference;
  const int64_t batch = AutoBatch(opts.batch_size, tokens.size(1), opts.device);
  at::Tensor hidden = Embed(model, tokens, opts.device, opts.dtype);
  (void)RunLayers(model, hidden, opts, batch, nullptr);
  at::Tensor h =
      RmsNorm(hidden, model.final_norm.to(opts.device, opts.dtype), model.config.rms_norm_eps);
  return at::linear(h, model.lm_head.to(opts.device, opts.dtype)).to(at::kFloat).cpu();
}

std::vector<int64_t> GreedyDecode(const LlamaModel& model, std::vector<int64_t> ids, int64_t steps,
                                  const ForwardOptions& opts) {
  for (int64_t s = 0; s < steps; ++s) {
    at::Tensor tokens = at::tensor(ids, at::kLong).view({1, -1});
    at::Tensor logits = Logits(model, tokens, opts);
    ids.push_back(logits[0][-1].argmax().item<int64_t>());
  }
  return ids;
}

}  // namespace prunerd
