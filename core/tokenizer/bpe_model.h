// File: bpe_model.h
//
// A BPE vocabulary with its encoding options: what the file loaders (SentencePiece
// `tokenizer.model`, llama2.c `tokenizer.bin`) produce and what BpeTokenizer encodes with.
// Nothing here knows about file formats.
//
// Two flavours differ in a few rules (see BpeTokenizer for the algorithm):
//  - kSentencePiece: pieces spell spaces as "▁" (U+2581); the text is normalised (malformed
//    UTF-8 → U+FFFD, optional removal of extra spaces, spaces → "▁", dummy prefix); merges look
//    only at NORMAL, USER_DEFINED and UNUSED pieces; unknown symbols become <0xNN> byte pieces
//    (or one <unk> per run without byte fallback).
//  - kLlama2c: pieces spell spaces as " "; the text is taken as is with a " " in front; a
//    UTF-8 character (llama2.c's grouping: a lead byte and up to 3 continuation bytes) missing
//    from the vocabulary becomes byte tokens (id = byte + 3) at once; merges may produce any
//    piece of the file.
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace prunerd {

// SentencePiece's piece types (the numbers are those of its ModelProto).
enum class PieceType : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct BpeModel {
  enum class Flavor { kSentencePiece, kLlama2c };
  Flavor flavor = Flavor::kSentencePiece;

  // Parallel arrays indexed by token id.
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<PieceType> types;

  int32_t unk_id = 0;
  int32_t bos_id = 1;  // -1: the model has none
  int32_t eos_id = 2;  // -1: the model has none
  // Unknown symbols as <0xNN> byte pieces; requires the 256 byte pieces.
  bool byte_fallback = true;

  // Normalisation (kSentencePiece; kLlama2c always adds the dummy prefix and nothing else).
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  bool escape_whitespaces = true;

  // What Decode() writes for <unk>.
  std::string unk_surface = " \xE2\x81\x87 ";
};

}  // namespace prunerd
