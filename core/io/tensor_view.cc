#include "core/io/tensor_view.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace prunerd {
namespace {

struct DTypeInfo {
  DType dtype;
  size_t size;
  std::string_view safetensors_name;
  std::string_view torch_name;
  bool floating;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, 8, "F64", "float64", true}, {DType::kF32, 4, "F32", "float32", true},
    {DType::kF16, 2, "F16", "float16", true}, {DType::kBF16, 2, "BF16", "bfloat16", true},
    {DType::kI64, 8, "I64", "int64", false},  {DType::kI32, 4, "I32", "int32", false},
    {DType::kI16, 2, "I16", "int16", false},  {DType::kI8, 1, "I8", "int8", false},
    {DType::kU8, 1, "U8", "uint8", false},    {DType::kBool, 1, "BOOL", "bool", false},
};

const DTypeInfo& Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  return kDTypes[1];  // unreachable for valid enum values
}

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

size_t DTypeSize(DType dtype) { return Info(dtype).size; }
std::string_view DTypeName(DType dtype) { return Info(dtype).safetensors_name; }
std::string_view DTypeTorchName(DType dtype) { return Info(dtype).torch_name; }
bool IsFloating(DType dtype) { return Info(dtype).floating; }

absl::StatusOr<DType> DTypeFromName(std::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.safetensors_name == name) return info.dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype \"", AbslView(name),
                   "\" (expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"));
}

absl::StatusOr<DType> DTypeFromTorchName(std::string_view name) {
  std::string n = absl::AsciiStrToLower(AbslView(name));
  if (n.rfind("torch.", 0) == 0) n = n.substr(6);
  if (n == "float32" || n == "float" || n == "fp32" || n == "f32") return DType::kF32;
  if (n == "float16" || n == "half" || n == "fp16" || n == "f16") return DType::kF16;
  if (n == "bfloat16" || n == "bf16") return DType::kBF16;
  if (n == "float64" || n == "double" || n == "fp64" || n == "f64") return DType::kF64;
  for (const DTypeInfo& info : kDTypes) {
    if (info.torch_name == n) return info.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", AbslView(name),
                                                 "\" (expected float32, float16 or bfloat16)"));
}

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

HostTensor HostTensor::Zeros(DType dtype, std::vector<int64_t> shape) {
  HostTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes = std::make_shared<std::vector<uint8_t>>(
      static_cast<size_t>(NumElements(t.shape)) * DTypeSize(dtype), 0);
  return t;
}

}  // namespace prunerd
