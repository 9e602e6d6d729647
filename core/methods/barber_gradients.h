// File: barber_gradients.h  (internal to core/: includes ATen and autograd)
//
// LLM-Barber's gradient statistic (methods.md §5.3): for one block of a decoder layer
// (attention: q/k/v/o; MLP: gate/up/down), the per-sequence loss
//   L_s = Σ (Y_s^sparse − Y_s^dense)²      (over the sequence's T × hidden outputs)
// between the sparse block's output (a fixed target) and the DENSE block run on the same input,
// differentiated w.r.t. the dense weights at their dense values, and accumulated as
// Σ_s G_s² per weight. The score is |W_dense| · sqrt(Σ_s G_s² / N) (metric wd; w and d are
// the ablations).
//
// We use the sum where the reference uses the mean (nn.MSELoss): every G_s is then scaled by
// the same constant T·hidden, which leaves every ranking (and so the mask) unchanged, and it
// keeps the values far from fp32/bf16 underflow.
//
// Efficiency: no backward pass per sequence. The weight gradient of a linear layer for one
// sequence is G_s = dY_sᵀ X_s, where dY_s = ∂L/∂Y_s is the gradient w.r.t. the layer's output.
// The dense block runs forward once on a batch of sequences, with the projections' outputs as
// the differentiated tensors (q/k/v outputs as leaves, o_proj's output non-leaf; gate/up
// outputs as leaves, down_proj's non-leaf); one autograd::grad gives dY for every sequence,
// and Σ_s (dY_sᵀ X_s)² is accumulated with one matmul per sequence and projection (fp32
// accumulators). Because L = Σ_s L_s and L_s depends on sequence s only, dL/dY_s = dL_s/dY_s.
//
// Precision: the dense block runs in `dense.proj[*].scalar_type()` — fp32 by default, as the
// reference; bf16 operands (fp32 loss and accumulators) can be chosen for large models.
//
//   std::array<at::Tensor, 4> acc = ZeroGradSq(dense, kAttentionProjs);
//   double sse = AttentionBlockError(dense32, xn, y_sparse, rope32, config, &acc);
//
// Thread-safety: pure functions over their arguments.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <vector>

#include "core/api/job_spec.h"
#include "core/engine/llama_model.h"

namespace prunerd {

inline constexpr std::array<Proj, 4> kAttentionProjs = {Proj::kQ, Proj::kK, Proj::kV, Proj::kO};
inline constexpr std::array<Proj, 3> kMlpProjs = {Proj::kGate, Proj::kUp, Proj::kDown};

// The attention context softmax(q kᵀ/√d + causal) v, heads merged: [B, T, heads·head_dim],
// from the q/k/v projection outputs [B, T, ·] (RoPE applied here). Differentiable; the same
// computation as Attention() in llama_model.h (which it is tested against).
at::Tensor AttentionContext(const at::Tensor& yq, const at::Tensor& yk, const at::Tensor& yv,
                            const RopeCache& rope, const LlamaConfig& config);

// acc += Σ_s (dy_sᵀ x_s)², dy [B, T, out], x [B, T, in]; acc [out, in] fp32.
void AddPerSequenceGradSq(const at::Tensor& dy, const at::Tensor& x, at::Tensor& acc);

// Dense attention block on `xn` (the normalised block input [B, T, hidden]) against the sparse
// output `y_sparse`: returns Σ (Y_sparse − Y_dense)² over the batch (fp64) and, when `grad_sq`
// is given, adds Σ_s G_s² of q/k/v/o (in kAttentionProjs order). `dense` and `rope` in the
// dense block's dtype; xn and y_sparse are cast as needed.
double AttentionBlockError(const LayerWeights& dense, const at::Tensor& xn,
                           const at::Tensor& y_sparse, const RopeCache& rope,
                           const LlamaConfig& config, std::array<at::Tensor, 4>* grad_sq);

// The same for the MLP block on `hn` (the post-attention normalised input): gate/up/down.
double MlpBlockError(const LayerWeights& dense, const at::Tensor& hn, const at::Tensor& z_sparse,
                     std::array<at::Tensor, 3>* grad_sq);

// A block made of one linear layer y = W x (methods.md §9.2(b)).
double LinearBlockError(const at::Tensor& w_dense, const at::Tensor& x, const at::Tensor& y_sparse,
                        at::Tensor* grad_sq);

// The Barber score of one matrix: wd = |W|·sqrt(Σ G²/N), w = |W|, d = sqrt(Σ G²/N). fp32.
at::Tensor BarberScores(const at::Tensor& w_dense, const at::Tensor& grad_sq_sum, int64_t sequences,
                        v1::BarberMetric metric);

}  // namespace prunerd
