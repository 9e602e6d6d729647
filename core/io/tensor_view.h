// File: tensor_view.h
//
// Torch-free descriptions of tensors held in host memory: an element type (DType), a
// non-owning view (TensorView, e.g. into an mmapped safetensors file) and an owning buffer
// (HostTensor, e.g. a llama2.c tensor after the RoPE permutation). These are the currency
// between model io, the writer and the engine; the engine wraps them with at::from_blob.
//
// Thread-safety: plain values; a TensorView is as thread-safe as the memory it points to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace prunerd {

enum class DType : uint8_t { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// Bytes per element.
size_t DTypeSize(DType dtype);
// The safetensors spelling: "F32", "F16", "BF16", "I64", ...
std::string_view DTypeName(DType dtype);
// Parses a safetensors dtype name; InvalidArgument naming the dtype when unknown.
absl::StatusOr<DType> DTypeFromName(std::string_view name);
// Parses the names used in config.json / on command lines: "float32", "fp16", "bfloat16", ...
absl::StatusOr<DType> DTypeFromTorchName(std::string_view name);
// "float32", "float16", "bfloat16", ... (what config.json's torch_dtype holds).
std::string_view DTypeTorchName(DType dtype);
bool IsFloating(DType dtype);

int64_t NumElements(const std::vector<int64_t>& shape);
std::string ShapeString(const std::vector<int64_t>& shape);  // "[64, 512]"

// A non-owning view of a contiguous, row-major tensor in host memory.
struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const { return NumElements(shape); }
};

// An owning, contiguous, row-major host tensor.
struct HostTensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::shared_ptr<std::vector<uint8_t>> bytes;

  static HostTensor Zeros(DType dtype, std::vector<int64_t> shape);
  TensorView view() const {
    return TensorView{dtype, shape, bytes ? bytes->data() : nullptr, bytes ? bytes->size() : 0};
  }
  void* mutable_data() { return bytes->data(); }
  int64_t numel() const { return NumElements(shape); }
};

}  // namespace prunerd
