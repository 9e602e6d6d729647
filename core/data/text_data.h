// File: text_data.h
//
// Text corpora for calibration and evaluation, tokenized once.
//
// Input files (the extension picks the format; the content is then validated):
//  - plain text (.txt, .raw, anything else): the whole file is one string, one document;
//  - JSON lines (.jsonl): one document per non-blank line, its "text" field (a string); each
//    document is tokenized on its own (with BOS) for calibration sampling, and all of them
//    joined with "\n\n" are tokenized once more (with one BOS) as the evaluation stream, as
//    the reference joins its documents; a large jsonl file therefore costs two tokenizations;
//  - pre-tokenized (.safetensors): a tensor "input_ids", int32 or int64, either [n, T] (used
//    as is: the first n rows are the windows) or [N] (one token stream, no BOS added).
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
  std::string source;                           // the file, for error messages
  std::vector<std::vector<int32_t>> documents;  // at least one, unless `fixed` is set
  // jsonl with several documents: BOS + the documents joined with "\n\n", for EvalWindows
  // (empty otherwise: the single document is the stream).
  std::vector<int32_t> joined;
  TokenWindows fixed;  // windows given by a pre-tokenized [n, T] file
  // Tokens in `documents` (or in `fixed`).
  int64_t num_tokens() const;
};

// Reads and tokenizes `path` (BOS in front of every text document). InvalidArgument naming
// the file for an empty file, a jsonl line without a "text" string, a bad input_ids tensor,
// token ids outside [0, vocab_size) (`vocab_size` is the model's), a text file without a
// tokenizer; NotFound for a missing file.
absl::StatusOr<TokenizedCorpus> LoadCorpus(const std::string& path, const Tokenizer* tokenizer,
                                           int32_t vocab_size);

// WikiText-2 windows (see above). `max_windows` > 0 keeps only the first ones.
// InvalidArgument naming the corpus when it holds fewer than `seqlen` tokens, when seqlen < 2,
// or when pre-tokenized windows have another length.
absl::StatusOr<TokenWindows> EvalWindows(const TokenizedCorpus& corpus, int64_t seqlen,
                                         int64_t max_windows = 0);

// `n` calibration windows of `seqlen` tokens drawn with `seed` (see above): for a single
// document of N tokens, offset = rng() % (N - seqlen); for several, doc = rng() % count until
// one has more than seqlen tokens, then offset = rng() % (size - seqlen). Pre-tokenized [n, T]
// windows are used as given (the first n rows). InvalidArgument naming the corpus for n < 1,
// seqlen < 2, or no document longer than seqlen tokens.
absl::StatusOr<TokenWindows> SampleCalibration(const TokenizedCorpus& corpus, int64_t n,
                                               int64_t seqlen, uint64_t seed);

}  // namespace prunerd
