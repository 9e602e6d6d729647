// File: golden.h
//
// Reading the reference goldens of tests/golden (written by tests/reference/run_all.py, an
// independent Python implementation; formats in tests/reference/README.md): JSON files,
// float32 tensors and packed pruning masks (np.packbits of the [out, in] zero mask, big-endian
// bit order: bit 7 of byte 0 is element [0, 0]).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace prunerd {

std::string GoldenPath(const std::string& rel);  // GoldenDir()/<rel> (core/testing/test_data.h)
absl::StatusOr<nlohmann::json> ReadGoldenJson(const std::string& rel);
// A float32 tensor of a golden safetensors file, flattened.
absl::StatusOr<std::vector<float>> ReadGoldenFloats(const std::string& rel, const std::string& name,
                                                    std::vector<int64_t>* shape);
// An int64 tensor of a golden safetensors file, flattened.
absl::StatusOr<std::vector<int64_t>> ReadGoldenInts(const std::string& rel, const std::string& name);
// The unpacked mask (1 = the weight is zero) of `weight_name`, [out * in] row-major.
absl::StatusOr<std::vector<uint8_t>> ReadGoldenMask(const std::string& rel,
                                                    const std::string& weight_name);

}  // namespace prunerd
