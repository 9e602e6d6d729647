// File: text_data.h
//
// Text corpora for calibration and evaluation, tokenized once.
//
// Input files (format from the extension, then content):
//  - plain text (.txt, .raw, anything else): the whole file is one string;
//  - JSON lines (.jsonl): one document per line, its "text" field; documents joined with
//    "\n\n" for evaluation, kept apart for calibration sampling;
//  - pre-tokenized (.safetensors): a tensor "input_ids", int32 or int64, either [n, T] (used
//    as is: the first n rows are the windows) or [N] (one token stream).
//
// Evaluation (WikiText-2 protocol, as the Wanda/SparseGPT code): tokenize the whole text once
// with one BOS in front, cut into floor(n / T) non-overlapping windows of T tokens, drop the
// remainder. Calibration: `n` windows of T tokens drawn with a seeded generator
// (std::mt19937_64, offsets by rng() % range, so draws are identical on every platform); for
// JSON lines, as the reference does, draw a document until one is longer than T tokens, then a
// random offset inside it.
//
// Thread-safety: plain functions and values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/tokenizer.h"

namespace prunerd {

// `windows` rows of `seqlen` tokens, row-major.
struct TokenWindows {
  int64_t windows = 0;
  int64_t seqlen = 0;
  std::vector<int32_t> ids;
  const int32_t* row(int64_t i) const { return ids.data() + i * seqlen; }
};

// A tokenized corpus: one stream (texts) or several documents (jsonl), or fixed windows
// (pre-tokenized [n, T]).
struct TokenizedCorpus {
  std::vector<std::vector<int32_t>> documents;  // at least one, unless `fixed` is set
  TokenWindows fixed;                            // windows given by a pre-tokenized [n, T] file
  int64_t num_tokens() const;
};

// Reads and tokenizes `path`. InvalidArgument naming the file for an empty file, a jsonl line
// without a "text" string, a bad input_ids tensor; tokens >= vocab_size are rejected.
absl::StatusOr<TokenizedCorpus> LoadCorpus(const std::string& path, const Tokenizer* tokenizer,
                                           int32_t vocab_size);

// WikiText-2 windows (see above). `max_windows` > 0 keeps only the first ones.
// InvalidArgument when the corpus holds fewer than `seqlen` tokens.
absl::StatusOr<TokenWindows> EvalWindows(const TokenizedCorpus& corpus, int64_t seqlen,
                                         int64_t max_windows = 0);

// `n` calibration windows of `seqlen` tokens drawn with `seed` (see above).
absl::StatusOr<TokenWindows> SampleCalibration(const TokenizedCorpus& corpus, int64_t n,
                                               int64_t seqlen, uint64_t seed);

}  // namespace prunerd
