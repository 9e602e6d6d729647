// File: torch_util.h  (internal to core/: includes ATen)
//
// The seam between the torch-free model io and libtorch: dtype mapping, zero-copy tensors over
// mmapped checkpoint bytes, device parsing, and the one place where exceptions thrown by
// libtorch (c10::Error, std::bad_alloc, CUDA out-of-memory) become absl::Status.
//
//   absl::Status s = TorchCall("layer 3", [&] { out = LayerForward(...); });
//
// Thread-safety: stateless functions.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/tensor_view.h"
#include "prunerd/v1/spec.pb.h"

namespace prunerd {

at::ScalarType ToScalarType(DType dtype);
absl::StatusOr<DType> FromScalarType(at::ScalarType t);

// A CPU tensor aliasing `view`'s bytes (no copy). The memory is read-only when it comes from
// an mmapped file: never modify the result in place; clone() first.
at::Tensor AliasTensor(const TensorView& view);
// A view of a contiguous CPU tensor's bytes; the tensor must outlive the view.
TensorView ViewOf(const at::Tensor& cpu_contiguous);

// "cpu", "cuda", "cuda:N". InvalidArgument for other spellings, FailedPrecondition when CUDA
// is asked for and not available (or N is out of range).
absl::StatusOr<at::Device> ParseDevice(const std::string& device);
// The compute dtype of a job: DTYPE_AUTO = `model_dtype` on CUDA (fp16/bf16 checkpoints),
// float32 otherwise. InvalidArgument for float16 on the CPU (not supported there).
absl::StatusOr<at::ScalarType> ResolveComputeDType(v1::DType dtype, DType model_dtype,
                                                   const at::Device& device);

// Translates an exception from libtorch: out-of-memory → ResourceExhausted, anything else →
// Internal, with `what` as context.
absl::Status StatusFromException(const std::exception& e, const std::string& what);

// Runs `fn`, converting exceptions into a status.
template <typename Fn>
absl::Status TorchCall(const std::string& what, Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return StatusFromException(e, what);
  }
}

// Device memory of this process's caching allocator (0 on CPU); peak since the last reset.
int64_t DeviceBytesAllocated(const at::Device& device);
int64_t DevicePeakBytes(const at::Device& device);
void ResetDevicePeak(const at::Device& device);
// Returns cached blocks to the driver (after a job, or a cancel).
void ReleaseDeviceCache(const at::Device& device);
// Waits for queued device work (for honest timings).
void Synchronize(const at::Device& device);
// Peak resident set size of the process, bytes.
int64_t HostPeakBytes();

}  // namespace prunerd
