// File: bpe_tokenizer.h
//
// The Tokenizer for a BpeModel: LLaMA's BPE with byte fallback, with SentencePiece's rules
// (checked token for token against `spm_encode` and python `sentencepiece` on whole corpora)
// or llama2.c's (see bpe_model.h for where the two differ).
//
// Encoding, SentencePiece flavour:
//  1. Normalise: every malformed UTF-8 byte → U+FFFD; with remove_extra_whitespaces, drop
//     leading and trailing spaces (U+0020 only) and collapse runs of them; if nothing is left
//     the result is empty; spaces → "▁"; a dummy "▁" in front of the whole text when
//     add_dummy_prefix (never after a newline: a newline is an ordinary character).
//  2. Split into symbols: at each position the longest USER_DEFINED piece (kept whole, never
//     merged), else one UTF-8 character.
//  3. Repeatedly merge the adjacent pair whose concatenation is a NORMAL/USER_DEFINED/UNUSED
//     piece of the highest score, the leftmost one on ties (a heap of candidate pairs over a
//     linked list of symbols: O(n log n)). A symbol not in the vocabulary still merges when the
//     concatenation is a piece.
//  4. Emit: a final UNUSED piece is split back into the two symbols that formed it
//     (recursively); a symbol not in the vocabulary becomes one <0xNN> piece per UTF-8 byte
//     (byte fallback) or <unk>, a run of consecutive unknown symbols giving one <unk>.
// Decoding: control pieces are dropped, runs of byte pieces are reassembled (malformed bytes →
// U+FFFD), "▁" → " ", <unk> → the model's unk surface, and the first piece loses one leading
// space when the model adds a dummy prefix.
//
//   BpeModel model = ...;  // from a loader
//   ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> tok, BpeTokenizer::Create(std::move(model)));
//
// Thread-safety: immutable after Create; Encode/Decode may be called concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/tokenizer.h"

namespace prunerd {

class BpeTokenizer final : public Tokenizer {
 public:
  // Validates the model: parallel arrays of one size, non-empty and (SentencePiece) unique
  // pieces, special ids in range, the 256 byte pieces when byte_fallback is set.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(BpeModel model);

  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const override;
  std::string Decode(const std::vector<int32_t>& ids) const override;
  // SentencePiece spelling in both flavours ("▁the", "<s>").
  std::string_view Piece(int32_t id) const override;

  int32_t vocab_size() const override { return static_cast<int32_t>(model_.pieces.size()); }
  int32_t bos_id() const override { return model_.bos_id; }
  int32_t eos_id() const override { return model_.eos_id; }
  int32_t unk_id() const override { return model_.unk_id; }

  const BpeModel& model() const { return model_; }

 private:
  struct Symbol;
  explicit BpeTokenizer(BpeModel model) : model_(std::move(model)) {}
  absl::Status Init();

  // Step 1: the normalised text ("" when there is nothing to encode).
  std::string Normalize(std::string_view text) const;
  // Step 2: appends the initial symbol(s) starting at `pos` of the normalised text (a
  // character, a user-defined piece, or llama2.c byte tokens); returns the next position.
  size_t AppendInitialSymbols(std::string_view norm, size_t pos, std::vector<Symbol>* out) const;
  // True when no merge can ever join `left` and `right`, two adjacent initial symbols.
  bool HardBoundary(std::string_view norm, const Symbol& left, const Symbol& right) const;

  BpeModel model_;
  // Pieces that merges may produce, by spelling (keys view into model_.pieces).
  absl::flat_hash_map<std::string_view, int32_t> merge_ids_;
  // Every pair of adjacent characters inside those pieces (keys view into model_.pieces).
  absl::flat_hash_set<std::string_view> char_pairs_;
  // Distinct byte lengths of USER_DEFINED pieces, longest first.
  std::vector<size_t> user_defined_lengths_;
  bool has_unused_ = false;
  std::array<int32_t, 256> byte_ids_{};      // byte → its piece id (-1 without byte fallback)
  std::vector<int16_t> byte_values_;         // id → its byte for BYTE pieces, else -1
  std::vector<std::string> display_pieces_;  // llama2.c only: the SentencePiece spelling
};

}  // namespace prunerd
