// File: fused_kernels.h  (internal to core/engine)
//
// Hand-written CUDA kernels for the memory-bound steps of a decoder layer, where ATen needs
// several passes over a tensor (or a slow strided kernel) for one formula. Compiled only when the
// build has CUDA (PRUNERD_WITH_CUDA_KERNELS); core/engine/fused_ops.h chooses between them and the
// ATen formulas. Plain types only: this header includes neither torch nor CUDA.
//
// Each launcher enqueues one kernel on `stream` (a cudaStream_t) and returns null, or the CUDA
// error string of the launch. Tensors are dense row-major on the current device, in `dtype`.
#pragma once

#include <cstdint>

namespace prunerd::kernels {

enum class DType { kHalf, kBFloat16 };

// Rotary position embedding, rotate-half convention, over x = [rows, head_dim] where row r is at
// position (r / heads) % seqlen (x is [batch, seqlen, heads, head_dim]); cos/sin are
// [≥ seqlen, head_dim]. out = x·cos + rotate_half(x)·sin, rounded as ATen's two steps
// (x·cos, then the addcmul); `inverse` applies the transposed rotation (the backward).
const char* LaunchRope(DType dtype, const void* x, const void* cos, const void* sin, void* out,
                       int64_t rows, int64_t heads, int64_t seqlen, int64_t head_dim, bool inverse,
                       void* stream);

// out = silu(gate) · up over n elements, rounded as ATen's two steps.
const char* LaunchSiluMul(DType dtype, const void* gate, const void* up, void* out, int64_t n,
                          void* stream);

// out = (x · rsqrt(mean(x²) + eps)) · weight per row of width n, the mean square in fp32 and
// each product rounded to dtype as Hugging Face's LlamaRMSNorm.
const char* LaunchRmsNorm(DType dtype, const void* x, const void* weight, void* out, int64_t rows,
                          int64_t n, double eps, void* stream);

}  // namespace prunerd::kernels
