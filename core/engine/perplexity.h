// File: perplexity.h  (internal to core/: includes ATen)
//
// Layer-streamed language-model evaluation. The hidden states of all windows stay on the
// device ([N, T, hidden] in the compute dtype) and the layers pass through one at a time, so a
// model larger than the device evaluates the same way as a small one. Windows are processed in
// batches. Per-window NLL is the mean next-token cross-entropy over the window's T-1
// predictions; perplexity = exp(mean over windows), the WikiText-2 protocol of the reference
// code.
//
// Thread-safety: pure functions over their arguments.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/text_data.h"
#include "core/engine/llama_model.h"

namespace prunerd {

struct ForwardOptions {
  at::Device device = at::Device(at::kCPU);
  at::ScalarType dtype = at::kFloat;
  int64_t batch_size = 0;  // sequences per forward; 0 = automatic from the token budget
};

// Sequences per batch: `requested` when > 0, else a budget of tokens (~8K on CPU, 32K on GPU)
// divided by seqlen, at least 1.
int64_t AutoBatch(int64_t requested, int64_t seqlen, const at::Device& device);

// Called after each layer (layer index, layers) and at the end of the head pass; false cancels.
using LayerProgress = std::function<bool(int64_t layer, int64_t layers)>;

// [N, T] int64 token tensor of `windows` (on the CPU).
at::Tensor WindowsTensor(const TokenWindows& windows);

// Per-window mean NLL (nats/token). Cancelled when `progress` returns false.
absl::StatusOr<std::vector<double>> WindowNll(const LlamaModel& model, const at::Tensor& tokens,
                                              const ForwardOptions& opts,
                                              const LayerProgress& progress);

// Logits [N, T, vocab] in fp32 on the CPU for a few sequences (tests, goldens, generation).
at::Tensor Logits(const LlamaModel& model, const at::Tensor& tokens, const ForwardOptions& opts);

// Greedy decoding from `prompt` for `steps` tokens (recomputes the whole prefix each step;
// for tests and demos on small models). Returns prompt + generated ids.
std::vector<int64_t> GreedyDecode(const LlamaModel& model, std::vector<int64_t> prompt,
                                  int64_t steps, const ForwardOptions& opts);

}  // namespace prunerd
