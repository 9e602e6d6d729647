// File: llama_model.h  (internal to core/: includes ATen)
//
// The LLaMA decoder in libtorch, one implementation for every checkpoint format, device and
// dtype: RMSNorm (computed in fp32, as Hugging Face does), rotate-half RoPE (with LLaMA-3
// frequency scaling), grouped-query attention with a causal mask (softmax in fp32), SwiGLU MLP.
//
// LlamaModel holds host tensors that alias the checkpoint's mmapped bytes (read-only: never
// modify them in place) or, once a layer has been pruned, owned replacements. Layers are moved
// to the device one at a time (LayerWeights::To), which is how a model larger than the GPU is
// evaluated and pruned.
//
// Taps: DecoderLayer can report the input of every linear layer (the pruning methods collect
// their statistics from these): kAttnIn feeds q/k/v, kAttnCtx feeds o_proj (the attention
// context), kMlpIn feeds gate/up, kMlpAct feeds down_proj (SiLU(gate)·up). The tensor passed
// is [B, T, in] in the compute dtype.
//
// Thread-safety: a LlamaModel is not synchronised; the functions are pure.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/fused_ops.h"  // RmsNorm, RotaryEmbed, SiluMul
#include "core/model/checkpoint.h"
#include "core/model/llama_config.h"

namespace prunerd {

struct LayerWeights {
  at::Tensor input_norm;
  at::Tensor post_norm;
  std::array<at::Tensor, 7> proj;  // indexed by Proj

  at::Tensor& operator[](Proj p) { return proj[static_cast<size_t>(p)]; }
  const at::Tensor& operator[](Proj p) const { return proj[static_cast<size_t>(p)]; }
  // Copies to `device`: projections in `dtype`, norms in `dtype` too (as HF does: the norm
  // weight multiplies the fp32-normalised value cast back to the input dtype). Always returns
  // fresh tensors, safe to modify.
  LayerWeights To(const at::Device& device, at::ScalarType dtype) const;
  int64_t Bytes() const;
};

struct LlamaModel {
  LlamaConfig config;
  std::shared_ptr<const Checkpoint> checkpoint;  // keeps the mapping alive
  at::Tensor embed;                              // [vocab, hidden]
  at::Tensor final_norm;                         // [hidden]
  at::Tensor lm_head;                            // [vocab, hidden] (the embedding when tied)
  std::vector<LayerWeights> layers;
};

absl::StatusOr<LlamaModel> LoadLlama(std::shared_ptr<const Checkpoint> checkpoint);

struct RopeCache {
  at::Tensor cos;  // [T, head_dim], compute dtype, on the device
  at::Tensor sin;
};
RopeCache MakeRope(const LlamaConfig& config, int64_t seqlen, const at::Device& device,
                   at::ScalarType dtype);
// The rotary inverse frequencies [head_dim / 2] in fp32, LLaMA-3 scaling applied.
at::Tensor RopeInvFreq(const LlamaConfig& config);

enum class Tap { kAttnIn, kAttnCtx, kMlpIn, kMlpAct };
using TapFn = std::function<void(Tap, const at::Tensor&)>;

// Self-attention on normalised input xn [B, T, hidden] → [B, T, hidden] (o_proj output).
at::Tensor Attention(const LayerWeights& w, const at::Tensor& xn, const RopeCache& rope,
                     const LlamaConfig& config, const TapFn* tap = nullptr);
// SwiGLU MLP on normalised input hn → [B, T, hidden]. With skip_down, returns an undefined
// tensor after tapping kMlpAct (the statistics passes need down_proj's input only).
at::Tensor Mlp(const LayerWeights& w, const at::Tensor& hn, const TapFn* tap = nullptr,
               bool skip_down = false);
// One decoder layer: h = x + Attn(norm(x)); out = h + MLP(norm(h)).
at::Tensor DecoderLayer(const LayerWeights& w, const at::Tensor& x, const RopeCache& rope,
                        const LlamaConfig& config, const TapFn* tap = nullptr);

// Token embedding of `tokens` [B, T] (int64, any device) → [B, T, hidden] on `device` in
// `dtype`. The table goes to the device once and the rows are gathered there (gathering a 7B
// job's 262k calibration rows on the host and copying them took about a second).
at::Tensor Embed(const LlamaModel& model, const at::Tensor& tokens, const at::Device& device,
                 at::ScalarType dtype);

}  // namespace prunerd
