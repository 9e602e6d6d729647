// File: llama2c_tokenizer_loader.h
//
// Reads a llama2.c `tokenizer.bin` into a BpeModel (flavour kLlama2c): an int32
// max_token_length, then for every token a float32 score, an int32 byte length and the bytes,
// all little-endian, to the end of the file (the file does not store the vocabulary size; it
// must parse exactly). Conventions of llama2.c's export: id 0 is <unk>, 1 BOS ("\n<s>\n"),
// 2 EOS ("\n</s>\n"), 3..258 the byte tokens "<0x00>".."<0xFF>" (byte fallback is on when they
// are all there), and "▁" already replaced by a space.
//
//   if (LooksLikeLlama2cTokenizer(bytes)) ASSIGN_OR_RETURN(BpeModel m, ParseLlama2cTokenizer(...));
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/tokenizer/bpe_model.h"

namespace prunerd {

// True when the file starts like a tokenizer.bin: a max_token_length in [1, 65536]. A
// SentencePiece ModelProto never does (its first bytes are field tags and lengths, which put a
// non-zero byte in the upper half of the first int32).
bool LooksLikeLlama2cTokenizer(std::string_view bytes);

// `source` names the file in error messages.
absl::StatusOr<BpeModel> ParseLlama2cTokenizer(std::string_view bytes, const std::string& source);

}  // namespace prunerd
