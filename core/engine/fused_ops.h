// File: fused_ops.h  (internal to core/engine)
//
// The decoder layer's memory-bound formulas (RMSNorm, the rotary embedding, SiLU(gate)·up), each
// in one pass over its tensors. On a CUDA tensor of fp16/bf16 without autograd, in a build with
// CUDA, they run the kernels of kernels/fused_kernels.h; everything else (the CPU, fp32 and fp64,
// tensors that need gradients) runs ATen's ops with the same arithmetic. `allow_fused = false`
// forces the ATen path (the tests compare the two).
//
// Why: on an H100 the ATen rotary embedding (a strided multiply and two strided addcmuls per
// tensor) took 1.2 ms per 16 × 2048 tokens where one pass takes 0.2 ms; over a 7B Wanda job's two
// forwards that is ~1 s of 14 (bench/gpu/profile_layer.py).
#pragma once

#include <ATen/ATen.h>

namespace prunerd {

// True when this build has the CUDA kernels.
bool FusedKernelsBuilt();
// True when the functions below take the kernel path for x (leaving autograd aside).
bool FusedFor(const at::Tensor& x);

// Hugging Face's LlamaRMSNorm over the last dimension: x·rsqrt(mean x² + eps) in fp32 (fp64 for
// fp64 x), rounded to x's dtype, times weight.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps,
                   bool allow_fused = true);

// x·cos + rotate_half(x)·sin for x = [batch, seqlen, heads, head_dim] (dense), cos/sin =
// [≥ seqlen, head_dim] in x's dtype; the result has x's shape and is dense. `inverse` rotates the
// other way (the backward of the forward rotation).
at::Tensor RotaryEmbed(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                       bool inverse = false, bool allow_fused = true);

// silu(gate) · up, both the same shape and dtype.
at::Tensor SiluMul(const at::Tensor& gate, const at::Tensor& up, bool allow_fused = true);

}  // namespace prunerd
