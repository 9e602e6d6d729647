// File: tf32_scope.h  (internal to core/: includes ATen)
//
// Scoped permission for TF32 tensor-core matmuls on fp32 operands (CUDA cuBLAS; no effect on
// the CPU), restoring the previous setting on exit.
//
// Why it can be exact: TF32 multiplies operands rounded to 10 mantissa bits and accumulates in
// fp32. Values that come from fp16 (10 bits) or bf16 (7 bits) tensors converted to fp32 are
// already representable, so products are exact and only the accumulation order differs from
// a plain fp32 GEMM — e.g. SparseGPT's Gram matrix Σ x xᵀ of fp16/bf16 activations, computed
// about 5× faster.
//
//   { ScopedTf32 tf32(device.is_cuda() && IsHalfOrBFloat16(dtype)); stats = Collect(...); }
//
// Thread-safety: the flag is process-global (at::globalContext()); a concurrent fp32 job on
// another device in the same process would see TF32 matmuls while a scope is open.
#pragma once

#include <ATen/ATen.h>

namespace prunerd {

inline bool IsHalfOrBFloat16(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

class ScopedTf32 {
 public:
  explicit ScopedTf32(bool enable)
      : enable_(enable), previous_(at::globalContext().allowTF32CuBLAS()) {
    if (enable_) at::globalContext().setAllowTF32CuBLAS(true);
  }
  ~ScopedTf32() {
    if (enable_) at::globalContext().setAllowTF32CuBLAS(previous_);
  }
  ScopedTf32(const ScopedTf32&) = delete;
  ScopedTf32& operator=(const ScopedTf32&) = delete;

 private:
  bool enable_;
  bool previous_;
};

}  // namespace prunerd
