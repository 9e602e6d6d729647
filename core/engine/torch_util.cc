#include "core/engine/torch_util.h"

#include <sys/resource.h>

#include <new>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/engine/cuda_util.h"

namespace prunerd {

at::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kF64: return at::kDouble;
    case DType::kF32: return at::kFloat;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kI64: return at::kLong;
    case DType::kI32: return at::kInt;
    case DType::kI16: return at::kShort;
    case DType::kI8: return at::kChar;
    case DType::kU8: return at::kByte;
    case DType::kBool: return at::kBool;
  }
  return at::kFloat;
}

absl::StatusOr<DType> FromScalarType(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return DType::kF64;
    case at::kFloat: return DType::kF32;
    case at::kHalf: return DType::kF16;
    case at::kBFloat16: return DType::kBF16;
    case at::kLong: return DType::kI64;
    case at::kInt: return DType::kI32;
    case at::kShort: return DType::kI16;
    case at::kChar: return DType::kI8;
    case at::kByte: return DType::kU8;
    case at::kBool: return DType::kBool;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported tensor type ", std::string(c10::toString(t))));
  }
}

at::Tensor AliasTensor(const TensorView& view) {
  return at::from_blob(const_cast<void*>(view.data), view.shape,
                       at::TensorOptions().dtype(ToScalarType(view.dtype)));
}

TensorView ViewOf(const at::Tensor& t) {
  TensorView v;
  v.dtype = FromScalarType(t.scalar_type()).value();
  v.shape.assign(t.sizes().begin(), t.sizes().end());
  v.data = t.data_ptr();
  v.nbytes = t.numel() * t.element_size();
  return v;
}

absl::StatusOr<at::Device> ParseDevice(const std::string& device) {
  if (device == "cpu") return at::Device(at::kCPU);
  int index = 0;
  if (device == "cuda") {
    index = 0;
  } else if (device.rfind("cuda:", 0) == 0 && absl::SimpleAtoi(device.substr(5), &index) &&
             index >= 0) {
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("device: unknown device \"", device, "\" (expected cpu, cuda or cuda:N)"));
  }
  const int count = CudaDeviceCount();
  if (count == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("device: ", device, " requested but no CUDA device is available"));
  }
  if (index >= count) {
    return absl::FailedPreconditionError(absl::StrCat("device: ", device, " requested but only ",
                                                      count, " CUDA device(s) exist"));
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

absl::StatusOr<at::ScalarType> ResolveComputeDType(v1::DType dtype, DType model_dtype,
                                                   const at::Device& device) {
  switch (dtype) {
    case v1::DTYPE_AUTO:
      if (device.is_cpu()) return at::kFloat;
      if (model_dtype == DType::kF16 || model_dtype == DType::kBF16) {
        return ToScalarType(model_dtype);
      }
      return at::kFloat;
    case v1::DTYPE_FLOAT32: return at::kFloat;
    case v1::DTYPE_FLOAT16:
      if (device.is_cpu()) {
        return absl::InvalidArgumentError(
            "dtype: float16 is not supported on the CPU (use float32, bfloat16 or auto)");
      }
      return at::kHalf;
    case v1::DTYPE_BFLOAT16: return at::kBFloat16;
    default:
      return absl::InvalidArgumentError(absl::StrCat("dtype: unknown dtype ", int(dtype)));
  }
}

absl::Status StatusFromException(const std::exception& e, const std::string& what) {
  std::string msg = e.what();
  // c10::Error messages carry a C++ backtrace after the first line; keep the first lines only.
  if (size_t cut = msg.find("\nException raised from"); cut != std::string::npos) {
    msg.resize(cut);
  }
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr ||
      msg.find("out of memory") != std::string::npos ||
      msg.find("OutOfMemory") != std::string::npos) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory: ", msg));
  }
  return absl::InternalError(absl::StrCat(what, ": ", msg));
}

int64_t DeviceBytesAllocated(const at::Device& device) {
  return device.is_cuda() ? CudaBytesAllocated(device.index()) : 0;
}
int64_t DevicePeakBytes(const at::Device& device) {
  return device.is_cuda() ? CudaPeakBytes(device.index()) : 0;
}
void ResetDevicePeak(const at::Device& device) {
  if (device.is_cuda()) CudaResetPeak(device.index());
}
void ReleaseDeviceCache(const at::Device& device) {
  if (device.is_cuda()) CudaEmptyCache();
}
void Synchronize(const at::Device& device) {
  if (device.is_cuda()) CudaSynchronize(device.index());
}

int64_t HostPeakBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

}  // namespace prunerd
