#include "core/engine/cuda_util.h"

#if PRUNERD_WITH_CUDA
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <mutex>
#endif

namespace prunerd {

#if PRUNERD_WITH_CUDA

int CudaDeviceCount() { return static_cast<int>(c10::cuda::device_count()); }

std::string CudaDeviceName(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "unknown CUDA device";
  return prop.name;
}

void CudaMemInfo(int index, int64_t* free_bytes, int64_t* total_bytes) {
  size_t f = 0, t = 0;
  int prev = 0;
  cudaGetDevice(&prev);
  cudaSetDevice(index);
  if (cudaMemGetInfo(&f, &t) != cudaSuccess) f = t = 0;
  cudaSetDevice(prev);
  *free_bytes = static_cast<int64_t>(f);
  *total_bytes = static_cast<int64_t>(t);
}

namespace {
// The caching allocator initialises itself on the first CUDA allocation of the process; its
// statistics calls fail before that ("Invalid device argument ...: did you call init?"), which
// is where a prune job starts. One tiny allocation makes sure it is there.
void EnsureAllocator(int index) {
  static std::once_flag once;
  std::call_once(once, [index] {
    const auto device = static_cast<c10::DeviceIndex>(index);
    (void)at::empty({1}, at::TensorOptions().device(at::kCUDA, device));
  });
}
c10::cuda::CUDACachingAllocator::DeviceStats Stats(int index) {
  EnsureAllocator(index);
  return c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
}
constexpr size_t kAggregate = 0;  // StatType::AGGREGATE
}  // namespace

int64_t CudaBytesAllocated(int index) { return Stats(index).allocated_bytes[kAggregate].current; }
int64_t CudaPeakBytes(int index) { return Stats(index).allocated_bytes[kAggregate].peak; }
void CudaResetPeak(int index) {
  EnsureAllocator(index);
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(index));
}
void CudaEmptyCache() { c10::cuda::CUDACachingAllocator::emptyCache(); }
void CudaSynchronize(int index) {
  c10::cuda::device_synchronize();
  (void)index;
}

void* CudaAllocHost(int64_t bytes) {
  void* ptr = nullptr;
  if (cudaHostAlloc(&ptr, static_cast<size_t>(bytes), cudaHostAllocDefault) != cudaSuccess) {
    return nullptr;
  }
  return ptr;
}

void CudaFreeHost(void* ptr) {
  if (ptr != nullptr) cudaFreeHost(ptr);
}

std::function<void()> CudaFence(int index) {
  const auto device = static_cast<c10::DeviceIndex>(index);
  auto event = std::make_shared<at::cuda::CUDAEvent>(cudaEventDisableTiming);
  event->record(at::cuda::getCurrentCUDAStream(device));
  return [event] { event->synchronize(); };
}

#else

int CudaDeviceCount() { return 0; }
std::string CudaDeviceName(int) { return ""; }
void CudaMemInfo(int, int64_t* free_bytes, int64_t* total_bytes) { *free_bytes = *total_bytes = 0; }
int64_t CudaBytesAllocated(int) { return 0; }
int64_t CudaPeakBytes(int) { return 0; }
void CudaResetPeak(int) {}
void CudaEmptyCache() {}
void CudaSynchronize(int) {}
void* CudaAllocHost(int64_t) { return nullptr; }
void CudaFreeHost(void*) {}
std::function<void()> CudaFence(int) {
  return [] {};
}

#endif

}  // namespace prunerd
