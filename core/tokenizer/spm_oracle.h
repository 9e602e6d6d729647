// File: spm_oracle.h
//
// Test-only: runs SentencePiece itself as the oracle for our tokenizer, in child processes
// (libsentencepiece cannot be linked into our binaries: toolchain.md G1).
//  - SpmEncodeLines: Debian's `spm_encode --output_format=id`, which encodes each line of the
//    file separately;
//  - SpmEncodeWhole: Debian's python3-sentencepiece under /usr/bin/python3
//    (testdata/spm_encode_whole.py), `sp.encode(bytes)` of the whole file.
// And a comparison that names the first mismatch (position, ids, pieces).
//
// Thread-safety: plain functions; each call forks a process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/tokenizer.h"

namespace prunerd::testing {

// The ids spm_encode prints, one vector per line of `text_path`.
absl::StatusOr<std::vector<std::vector<int32_t>>> SpmEncodeLines(const std::string& model_path,
                                                                 const std::string& text_path);

// sp.encode of each whole file, one vector per file.
absl::StatusOr<std::vector<std::vector<int32_t>>> SpmEncodeWhole(
    const std::string& model_path, const std::vector<std::string>& text_paths);

// "" when equal; else a description of the first difference, with `context` (e.g. "line 12")
// and the pieces around it as `tok` spells them.
std::string DescribeMismatch(const std::vector<int32_t>& expected,
                             const std::vector<int32_t>& actual, const Tokenizer& tok,
                             const std::string& context);

// Splits a file's contents into lines as spm_encode reads them (std::getline: a final '\n'
// does not start another line).
std::vector<std::string> SplitLines(const std::string& text);

std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& contents);

}  // namespace prunerd::testing
