// File: sentencepiece_model_loader.h
//
// Reads a SentencePiece `tokenizer.model` (a serialized ModelProto, schema in
// sentencepiece_model.proto) into a BpeModel. Only what LLaMA-family tokenizers use is
// supported: model_type BPE, the identity normalisation (an empty precompiled_charsmap), with
// the add_dummy_prefix / remove_extra_whitespaces / escape_whitespaces flags honoured. Anything
// else (unigram models, NFKC charsmaps, whitespace as suffix) is Unimplemented, never silently
// mis-encoded. trainer_spec.split_digits only shapes training (the vocabulary has no multi-digit
// pieces then), so encoding ignores it.
//
//   ASSIGN_OR_RETURN(BpeModel model, ParseSentencePieceModel(bytes, "tokenizer.model"));
//
// Thread-safety: a pure function.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/tokenizer/bpe_model.h"

namespace prunerd {

// `bytes` is the file's contents; `source` names it in error messages.
absl::StatusOr<BpeModel> ParseSentencePieceModel(std::string_view bytes, const std::string& source);

}  // namespace prunerd
