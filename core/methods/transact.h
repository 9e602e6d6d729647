// File: transact.h  (internal to core/: includes ATen)
//
// TransAct structured pruning (methods.md §6): shrinks the attention heads and the MLP
// intermediate channels of every layer and keeps the hidden size (embeddings, residual stream,
// norms). The result is a smaller dense LLaMA: fewer query/KV heads of the same head_dim, a
// smaller intermediate_size, the same dims in every layer, each layer with its own indices.
//
// Scoring (§6.2). One layer-streamed pass over the calibration windows per shot: the hidden
// states of all windows stay on the device and the layers pass through one at a time, in
// batches. For every layer of the *current* model (no re-propagation through pruned layers)
// Σa² is accumulated in fp32 for each input channel of o_proj (the attention context, Tap
// kAttnCtx) and of down_proj (SiLU(gate)·up, Tap kMlpAct); the score is the L2 norm sqrt(Σa²)
// over all calibration tokens.
//
// Selection (§6.3). Head score H_i = mean_j s[i,j] + (10/head_dim)·max_j s[i,j] over head i's
// head_dim channels. MLP channels: top-k by score. Kept indices are sorted ascending. Ties are
// broken towards the lower index. Whole heads only (no head_dim pruning), so kept heads keep
// their RoPE frequencies and 1/√head_dim scale and the pruned model is exactly the dense model
// with the removed channels of o_proj's and down_proj's inputs zeroed.
//
// Grouped-query attention (not in the reference code). Query head i reads KV head
// i / (heads / kv_heads); a "KV group" is a KV head and its heads/kv_heads query heads.
//  - v1::GQA_MODE_KV_GROUPS (default): group score = Σ of its query heads' H; whole groups are kept
//    or removed. Kept: the q rows of the kept groups' query heads, the k/v rows of the kept KV
//    heads, the o columns of the kept query heads. The query-per-KV ratio is unchanged and the
//    KV cache shrinks in proportion to the attention dim.
//  - v1::GQA_MODE_QUERY_HEADS: every KV head is kept; every group keeps the same number of query
//    heads, its top ones by H. q rows and o columns of the kept query heads; k/v unchanged. The
//    KV cache is unchanged.
//  - MHA (kv_heads == heads): each head is its own group; both modes are the paper's head
//    pruning (n_kv' = n_h').
//
// Targets. The attention target is a query dim: `attn_dim` when > 0, else
// q_dim - floor(attn_ratio·q_dim) (q_dim = heads·head_dim); likewise the MLP target is
// `mlp_dim` or d_ff - floor(mlp_ratio·d_ff). The attention dim moves in units of
//   kv_groups: heads/kv_heads query heads (one group);   query_heads: kv_heads query heads (one
//   per group);   MHA: one head,
// and a dim is rounded UP to a whole number of units (as the reference rounds
// n_h' = ceil(dim/head_dim)): at most the requested fraction is removed, at least one unit
// stays. (floor(r·d) is the truncated double product, Python's int(r * d); ceil over a
// group equals tests/reference/transact_ref.py's ceil(ceil(dim/head_dim)/heads_per_group).)
// Example: prose16M (6 heads of 64, 2 KV heads) at attn_ratio 0.25 asks for 288 of 384 dims;
// kv_groups rounds to 2 groups = 384 (nothing removed), query_heads to 3 per group = 384; at 0.5
// kv_groups keeps 1 group (3 heads, 1 KV head), query_heads 2 per group (4 heads, 2 KV).
//
// Schedule (§6.5). With K shots, at shot t (1-based) next = cur - floor((cur - target) /
// (K - t + 1)), the attention dim then rounded up to whole units; every shot re-scores the
// current (already sliced) model. K = 1 is one-shot pruning. No recovery training: the model is
// sliced and returned without any weight update.
//
//   ASSIGN_OR_RETURN(v1::TransActReport details,
//                    TransActPrune(model, calib_tokens, WithDefaults(spec).transact(), fwd,
//                                  progress));
//   // model.config now has the new heads / kv heads / intermediate_size; WriteHfModel(...)
//
// Thread-safety: the pure functions are thread-safe; TransActPrune mutates `model`, one call per
// model at a time.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/job_spec.h"
#include "core/engine/llama_model.h"
#include "core/engine/perplexity.h"
#include "prunerd/v1/engine.pb.h"

namespace prunerd {

// ---- Pure functions (no model) -----------------------------------------------------------

// One step of the paper's schedule: cur - floor((cur - target) / (shots - shot + 1)), shot
// 1-based in [1, shots]. Returns cur when cur <= target.
int64_t ScheduleStep(int64_t cur, int64_t target, int shot, int shots);

// The dims after each of `shots` shots from `dense` towards `target` (both > 0), each rounded
// up to a multiple of `unit` (1 for the MLP; head_dim·heads-per-unit for attention). `target`
// must itself be a multiple of `unit`; the last element equals it.
std::vector<int64_t> DimSchedule(int64_t dense, int64_t target, int shots, int64_t unit);

// H_i = mean + (10/head_dim)·max over each head's channel scores; `channel_scores` has
// heads·head_dim entries, head-major.
std::vector<double> HeadScores(const std::vector<double>& channel_scores, int64_t head_dim);

// Indices of the `k` largest scores (ties: lower index first), returned ascending.
std::vector<int64_t> TopKSorted(const std::vector<double>& scores, int64_t k);

// Channel indices h·head_dim .. h·head_dim + head_dim - 1 of each head, in order.
std::vector<int64_t> HeadChannels(const std::vector<int64_t>& heads, int64_t head_dim);

struct HeadSelection {
  std::vector<int64_t> q_heads;   // kept query heads, ascending
  std::vector<int64_t> kv_heads;  // kept KV heads, ascending
};

// Chooses `keep_q_heads` of the query heads from their H scores (size = heads) with `kv_heads`
// KV heads, under `mode` (see the file comment). keep_q_heads must be a whole number of the
// mode's units (AttnUnitHeads).
HeadSelection SelectHeads(const std::vector<double>& head_scores, int64_t kv_heads,
                          int64_t keep_q_heads, v1::GqaMode mode);

// The number of query heads the attention dim moves by: heads/kv_heads (kv_groups), kv_heads
// (query_heads), 1 for MHA.
int64_t AttnUnitHeads(int64_t heads, int64_t kv_heads, v1::GqaMode mode);

// The dims of the model after one shot.
struct TransActDims {
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t intermediate = 0;
};

// Resolves the targets of `options` for `config` (see "Targets" above) and the per-shot dims.
// InvalidArgument naming the field for an attn_dim / mlp_dim larger than the model's.
absl::StatusOr<std::vector<TransActDims>> PlanTransAct(const LlamaConfig& config,
                                                       const v1::TransActOptions& options);

// ---- Scoring ----------------------------------------------------------------------------

// acc[c] += Σ over all leading dims of a[..., c]², accumulated in fp32 (acc: fp32 [C]).
void AccumulateChannelSquares(at::Tensor& acc, const at::Tensor& a);

// Per layer, on the CPU in fp32: the L2 norms over all tokens of o_proj's input channels
// ([heads·head_dim]) and down_proj's input channels ([intermediate]).
struct ActivationScores {
  std::vector<at::Tensor> attn;
  std::vector<at::Tensor> mlp;
};

// One layer-streamed, batched pass of `model` over `tokens` [N, T] (see the file comment).
absl::StatusOr<ActivationScores> ScoreActivations(const LlamaModel& model, const at::Tensor& tokens,
                                                  const ForwardOptions& fwd,
                                                  const LayerProgress& progress);

// ---- Pruning ----------------------------------------------------------------------------

// Slices `model` in place (layers and config) to the dims of `options`, in options.shots shots,
// each one scoring pass over `calib_tokens` [N, T] (int64) followed by the slicing. Sliced
// weights are the dense entries bit for bit, in the model's storage dtype, on the host.
// `progress` is called after every layer of every shot as (shot·layers + layer, shots·layers);
// returning false gives Cancelled, with the model left as the last completed shot made it.
// `options` must have its defaults filled in (WithDefaults). Returns the report: the per-shot
// dims, per-layer kept indices in the dense model's numbering (MLP channels only when
// layers·intermediate ≤ 65536), parameter and KV-cache sizes before/after, and stage timings
// ("embed", "load", "score", "select", "slice", "store", in seconds, device-synchronised).
absl::StatusOr<v1::TransActReport> TransActPrune(LlamaModel& model, const at::Tensor& calib_tokens,
                                                 const v1::TransActOptions& options,
                                                 const ForwardOptions& fwd,
                                                 const LayerProgress& progress);

}  // namespace prunerd
