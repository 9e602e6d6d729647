// File: tokenizer.h
//
// LLaMA's tokenizer, implemented in the project (Debian's libsentencepiece cannot share a
// process with gRPC or libtorch: toolchain.md G1). Two file formats:
//  - a SentencePiece `tokenizer.model` (a ModelProto, read with our own copy of its .proto under
//    package prunerd.spm): BPE with byte fallback, as SentencePiece encodes: normalisation
//    (identity; whitespace escaped to U+2581 "▁"; a dummy-prefix "▁" at the start of the text
//    only when the model asks for it), then greedy merging of the adjacent pair whose merged
//    piece has the highest score, then pieces missing from the vocabulary as <0xNN> byte
//    tokens. Encode() of a whole text equals SentencePiece's `sp.encode(text)`; Encode() of
//    one line equals `spm_encode --output_format=id` on that line (spm_encode encodes each
//    line separately). Checked token for token on every bundled text and tokenizer.
//  - a llama2.c `tokenizer.bin` (int32 max_token_length, then per token float score, int32
//    length, bytes): the same BPE over its vocabulary, with llama2.c's conventions (a dummy
//    prefix space, byte fallback as id = byte + 3). It differs from SentencePiece only where
//    llama2.c does: no removal of extra spaces (tok512.model asks for it), malformed UTF-8
//    kept as raw byte tokens instead of U+FFFD. See bpe_model.h and bpe_tokenizer.h.
//
//   ASSIGN_OR_RETURN(auto tok, Tokenizer::Load("tokenizer.model"));
//   std::vector<int32_t> ids = tok->Encode("Hello world", /*add_bos=*/true);
//
// Thread-safety: immutable after Load; Encode/Decode may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace prunerd {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Detects the format from the file's contents.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);

  // Encodes a whole text as one string (newlines become byte tokens where the vocabulary has
  // no piece for them), with BOS in front when `add_bos`.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_bos) const = 0;
  // SentencePiece's decoding (both formats): control pieces dropped, byte pieces reassembled,
  // "▁" → " ", and the first piece's leading space (the dummy prefix) dropped.
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  // The text of one piece, spelled as SentencePiece does for both formats ("▁the", "<0x0A>",
  // "<s>"); empty for an id outside the vocabulary.
  virtual std::string_view Piece(int32_t id) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int32_t unk_id() const = 0;
};

}  // namespace prunerd
