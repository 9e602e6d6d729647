// The kernels of fused_kernels.h. Each thread moves V elements with one aligned vector load or
// store (16 bytes where the shapes allow), computes in fp32 and rounds to the storage type (fp16
// or bf16) where the unfused ATen formula would, so results match ATen's to the last bit in the
// common case and by one rounding step at most.
#include "core/engine/kernels/fused_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

namespace prunerd::kernels {
namespace {

template <typename T>
__device__ __forceinline__ float ToF(T v);
template <>
__device__ __forceinline__ float ToF<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T FromF(float v);
template <>
__device__ __forceinline__ __half FromF<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// v rounded to T and back: the value an intermediate ATen tensor of type T would hold.
template <typename T>
__device__ __forceinline__ float Round(float v) {
  return ToF<T>(FromF<T>(v));
}

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ Vec<T, V> Load(const T* p) {
  return *reinterpret_cast<const Vec<T, V>*>(p);
}
template <typename T, int V>
__device__ __forceinline__ void Store(T* p, const Vec<T, V>& v) {
  *reinterpret_cast<Vec<T, V>*>(p) = v;
}

constexpr int kThreads = 256;

int Blocks(int64_t work) {
  // Enough blocks to fill any current GPU several times over; grid-stride loops do the rest.
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads,
                                                                 int64_t{1} << 16)));
}

const char* LastError() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

// The widest vector (≤ 16 bytes) that divides `count` and keeps every pointer aligned.
template <typename T>
int VectorWidth(int64_t count, std::initializer_list<const void*> ptrs) {
  for (int v = static_cast<int>(16 / sizeof(T)); v > 1; v /= 2) {
    bool ok = count % v == 0;
    for (const void* p : ptrs) ok = ok && reinterpret_cast<uintptr_t>(p) % (v * sizeof(T)) == 0;
    if (ok) return v;
  }
  return 1;
}

// ---- rotary embedding -------------------------------------------------------------------------

template <typename T, int V>
__global__ void RopeKernel(const T* __restrict__ x, const T* __restrict__ cos,
                           const T* __restrict__ sin, T* __restrict__ out, int64_t rows,
                           int64_t heads, int64_t seqlen, int64_t d, float sign) {
  const int64_t half = d / 2, per_row = half / V, total = rows * per_row;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / per_row, j = (i - r * per_row) * V;
    const int64_t t = (r / heads) % seqlen;
    const T* xr = x + r * d;
    const Vec<T, V> x1 = Load<T, V>(xr + j), x2 = Load<T, V>(xr + half + j);
    const Vec<T, V> c1 = Load<T, V>(cos + t * d + j), c2 = Load<T, V>(cos + t * d + half + j);
    const Vec<T, V> s1 = Load<T, V>(sin + t * d + j), s2 = Load<T, V>(sin + t * d + half + j);
    Vec<T, V> o1, o2;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float a = ToF(x1.v[k]), b = ToF(x2.v[k]);
      // ATen: out = x·cos (rounded), then out₁ -= x₂·sin₁, out₂ += x₁·sin₂ (rounded).
      o1.v[k] = FromF<T>(Round<T>(a * ToF(c1.v[k])) - sign * (b * ToF(s1.v[k])));
      o2.v[k] = FromF<T>(Round<T>(b * ToF(c2.v[k])) + sign * (a * ToF(s2.v[k])));
    }
    T* o = out + r * d;
    Store<T, V>(o + j, o1);
    Store<T, V>(o + half + j, o2);
  }
}

template <typename T>
const char* Rope(const void* x, const void* cos, const void* sin, void* out, int64_t rows,
                 int64_t heads, int64_t seqlen, int64_t d, bool inverse, cudaStream_t stream) {
  const T* xp = static_cast<const T*>(x);
  const T* cp = static_cast<const T*>(cos);
  const T* sp = static_cast<const T*>(sin);
  T* op = static_cast<T*>(out);
  const int64_t half = d / 2;
  // Every row (and the second half of it) must stay aligned, so the width divides half too.
  const int v = VectorWidth<T>(half, {x, cos, sin, out});
  const int blocks = Blocks(rows * (half / v));
  const float sign = inverse ? -1.0f : 1.0f;
  switch (v) {
    case 8:
      RopeKernel<T, 8><<<blocks, kThreads, 0, stream>>>(xp, cp, sp, op, rows, heads, seqlen, d,
                                                        sign);
      break;
    case 4:
      RopeKernel<T, 4><<<blocks, kThreads, 0, stream>>>(xp, cp, sp, op, rows, heads, seqlen, d,
                                                        sign);
      break;
    case 2:
      RopeKernel<T, 2><<<blocks, kThreads, 0, stream>>>(xp, cp, sp, op, rows, heads, seqlen, d,
                                                        sign);
      break;
    default:
      RopeKernel<T, 1><<<blocks, kThreads, 0, stream>>>(xp, cp, sp, op, rows, heads, seqlen, d,
                                                        sign);
  }
  return LastError();
}

// ---- silu(gate) · up --------------------------------------------------------------------------

template <typename T>
__device__ __forceinline__ T SiluMulOne(T g, T u) {
  const float a = ToF(g);
  return FromF<T>(Round<T>(a / (1.0f + expf(-a))) * ToF(u));  // ATen: silu (rounded), then mul
}

template <typename T, int V>
__global__ void SiluMulKernel(const T* __restrict__ gate, const T* __restrict__ up,
                              T* __restrict__ out, int64_t n) {
  const int64_t vecs = n / V;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < vecs;
       i += int64_t{gridDim.x} * blockDim.x) {
    const Vec<T, V> g = Load<T, V>(gate + i * V), u = Load<T, V>(up + i * V);
    Vec<T, V> o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = SiluMulOne(g.v[k], u.v[k]);
    Store<T, V>(out + i * V, o);
  }
}

template <typename T>
const char* SiluMul(const void* gate, const void* up, void* out, int64_t n, cudaStream_t stream) {
  const T* gp = static_cast<const T*>(gate);
  const T* up_ = static_cast<const T*>(up);
  T* op = static_cast<T*>(out);
  const int v = VectorWidth<T>(n, {gate, up, out});
  const int blocks = Blocks(n / v);
  switch (v) {
    case 8:
      SiluMulKernel<T, 8><<<blocks, kThreads, 0, stream>>>(gp, up_, op, n);
      break;
    case 4:
      SiluMulKernel<T, 4><<<blocks, kThreads, 0, stream>>>(gp, up_, op, n);
      break;
    case 2:
      SiluMulKernel<T, 2><<<blocks, kThreads, 0, stream>>>(gp, up_, op, n);
      break;
    default:
      SiluMulKernel<T, 1><<<blocks, kThreads, 0, stream>>>(gp, up_, op, n);
  }
  return LastError();
}

// ---- RMSNorm ----------------------------------------------------------------------------------

// Sum over the block; every thread gets the result. `shared` holds one float per warp.
__device__ __forceinline__ float BlockSum(float v, float* shared) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // `shared` may still be read from the previous row
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.0f;
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One block per row (grid-stride over rows); blockDim.x is a multiple of 32.
template <typename T, int V>
__global__ void RmsNormKernel(const T* __restrict__ x, const T* __restrict__ w,
                              T* __restrict__ out, int64_t rows, int64_t n, float eps) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    float acc = 0.0f;
    for (int64_t j = threadIdx.x * int64_t{V}; j < n; j += int64_t{blockDim.x} * V) {
      const Vec<T, V> xv = Load<T, V>(xr + j);
#pragma unroll
      for (int k = 0; k < V; ++k) acc += ToF(xv.v[k]) * ToF(xv.v[k]);
    }
    const float scale = rsqrtf(BlockSum(acc, shared) / static_cast<float>(n) + eps);
    T* o = out + r * n;
    for (int64_t j = threadIdx.x * int64_t{V}; j < n; j += int64_t{blockDim.x} * V) {
      const Vec<T, V> xv = Load<T, V>(xr + j), wv = Load<T, V>(w + j);
      Vec<T, V> ov;
#pragma unroll
      for (int k = 0; k < V; ++k) ov.v[k] = FromF<T>(Round<T>(ToF(xv.v[k]) * scale) * ToF(wv.v[k]));
      Store<T, V>(o + j, ov);
    }
  }
}

template <typename T>
const char* RmsNorm(const void* x, const void* weight, void* out, int64_t rows, int64_t n,
                    double eps, cudaStream_t stream) {
  const T* xp = static_cast<const T*>(x);
  const T* wp = static_cast<const T*>(weight);
  T* op = static_cast<T*>(out);
  const int v = VectorWidth<T>(n, {x, weight, out});
  int threads = 32;
  while (threads < 1024 && threads * v < n) threads *= 2;
  threads = std::min(threads, kThreads);
  const int blocks = static_cast<int>(std::min<int64_t>(rows, int64_t{1} << 16));
  const float e = static_cast<float>(eps);
  switch (v) {
    case 8:
      RmsNormKernel<T, 8><<<blocks, threads, 0, stream>>>(xp, wp, op, rows, n, e);
      break;
    case 4:
      RmsNormKernel<T, 4><<<blocks, threads, 0, stream>>>(xp, wp, op, rows, n, e);
      break;
    case 2:
      RmsNormKernel<T, 2><<<blocks, threads, 0, stream>>>(xp, wp, op, rows, n, e);
      break;
    default:
      RmsNormKernel<T, 1><<<blocks, threads, 0, stream>>>(xp, wp, op, rows, n, e);
  }
  return LastError();
}

}  // namespace

#define PRUNERD_DISPATCH(dtype, fn, ...)                                          \
  switch (dtype) {                                                                \
    case DType::kHalf:                                                            \
      return fn<__half>(__VA_ARGS__);                                             \
    case DType::kBFloat16:                                                        \
      return fn<__nv_bfloat16>(__VA_ARGS__);                                      \
  }                                                                               \
  return "unsupported dtype"

const char* LaunchRope(DType dtype, const void* x, const void* cos, const void* sin, void* out,
                       int64_t rows, int64_t heads, int64_t seqlen, int64_t head_dim, bool inverse,
                       void* stream) {
  PRUNERD_DISPATCH(dtype, Rope, x, cos, sin, out, rows, heads, seqlen, head_dim, inverse,
                   static_cast<cudaStream_t>(stream));
}

const char* LaunchSiluMul(DType dtype, const void* gate, const void* up, void* out, int64_t n,
                          void* stream) {
  PRUNERD_DISPATCH(dtype, SiluMul, gate, up, out, n, static_cast<cudaStream_t>(stream));
}

const char* LaunchRmsNorm(DType dtype, const void* x, const void* weight, void* out, int64_t rows,
                          int64_t n, double eps, void* stream) {
  PRUNERD_DISPATCH(dtype, RmsNorm, x, weight, out, rows, n, eps,
                   static_cast<cudaStream_t>(stream));
}

}  // namespace prunerd::kernels
