// File: cuda_util.h  (internal to core/engine)
//
// The CUDA-specific calls the engine needs, behind plain functions so that only cuda_util.cc
// includes c10/cuda headers, and a CPU-only build (Debian's libtorch) compiles a stub.
// All functions are safe to call without CUDA: they return 0 / do nothing.
//
// Thread-safety: as libtorch's CUDA allocator (thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace prunerd {

int CudaDeviceCount();
std::string CudaDeviceName(int index);
// Total and free memory reported by the driver.
void CudaMemInfo(int index, int64_t* free_bytes, int64_t* total_bytes);
int64_t CudaBytesAllocated(int index);
int64_t CudaPeakBytes(int index);
void CudaResetPeak(int index);
void CudaEmptyCache();
void CudaSynchronize(int index);
// Page-locked host memory straight from the CUDA runtime (not libtorch's caching host
// allocator, whose cached blocks outlive the job), or null. Free with CudaFreeHost.
void* CudaAllocHost(int64_t bytes);
void CudaFreeHost(void* ptr);
// Marks the work queued so far on the current stream of device `index`; the returned function
// blocks the calling thread (any thread) until that work has run. Later work is not waited for.
// Without CUDA the function returns at once.
std::function<void()> CudaFence(int index);

}  // namespace prunerd
