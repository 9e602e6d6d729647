// File: spm_model_edit.h
//
// Test-only: writes variants of a SentencePiece model (a piece made USER_DEFINED or UNUSED, a
// normaliser flag flipped, ...) so that our tokenizer and SentencePiece itself can be compared
// on rules the bundled models do not exercise.
//
//   std::string path = WriteModelVariant(base, dir + "/v.model", [](spm::ModelProto& m) {
//     m.mutable_normalizer_spec()->set_remove_extra_whitespaces(false);
//   });
//
// Thread-safety: plain functions.
#pragma once

#include <functional>
#include <string>

#include "core/tokenizer/sentencepiece_model.pb.h"

namespace prunerd::testing {

// Reads `base_path`, applies `edit` and writes the result to `out_path`; returns out_path.
// Aborts on I/O or parse errors (test setup).
std::string WriteModelVariant(const std::string& base_path, const std::string& out_path,
                              const std::function<void(spm::ModelProto&)>& edit);

// A fresh directory under the test's temp dir.
std::string MakeTempDir();

}  // namespace prunerd::testing
