// File: sentencepiece_model_loader.cc
#include "core/tokenizer/sentencepiece_model_loader.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/sentencepiece_model.pb.h"

namespace prunerd {

absl::StatusOr<BpeModel> ParseSentencePieceModel(std::string_view bytes,
                                                 const std::string& source) {
  spm::ModelProto proto;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a SentencePiece model (protobuf parse failed)"));
  }
  if (proto.pieces_size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": SentencePiece model has no pieces"));
  }
  const spm::TrainerSpec& trainer = proto.trainer_spec();
  if (trainer.model_type() != spm::TrainerSpec::BPE) {
    return absl::UnimplementedError(absl::StrCat(source, ": SentencePiece model_type ",
                                                 static_cast<int>(trainer.model_type()),
                                                 " is not supported (only BPE = 2)"));
  }
  if (trainer.treat_whitespace_as_suffix()) {
    return absl::UnimplementedError(
        absl::StrCat(source, ": treat_whitespace_as_suffix is not supported"));
  }
  const spm::NormalizerSpec& norm = proto.normalizer_spec();
  if (!norm.precompiled_charsmap().empty()) {
    return absl::UnimplementedError(absl::StrCat(
        source, ": normalizer \"", norm.name(),
        "\" has a precompiled charsmap; only the identity normalisation is supported"));
  }
  if (proto.has_denormalizer_spec() && !proto.denormalizer_spec().precompiled_charsmap().empty()) {
    return absl::UnimplementedError(
        absl::StrCat(source, ": a denormalizer charsmap is not supported"));
  }

  BpeModel model;
  model.flavor = BpeModel::Flavor::kSentencePiece;
  const int n = proto.pieces_size();
  model.pieces.reserve(n);
  model.scores.reserve(n);
  model.types.reserve(n);
  int32_t unk = -1;
  for (int i = 0; i < n; ++i) {
    const spm::ModelProto::SentencePiece& p = proto.pieces(i);
    model.pieces.push_back(p.piece());
    model.scores.push_back(p.score());
    model.types.push_back(static_cast<PieceType>(p.type()));
    if (p.type() == spm::ModelProto::SentencePiece::UNKNOWN) {
      if (unk >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": more than one UNKNOWN piece (", unk, " and ", i, ")"));
      }
      unk = i;
    }
  }
  if (unk < 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no UNKNOWN (<unk>) piece"));
  }
  if (trainer.unk_id() != unk) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": trainer_spec.unk_id ",
                                                   trainer.unk_id(), " but <unk> is piece ", unk));
  }
  model.unk_id = unk;
  model.bos_id = trainer.bos_id();
  model.eos_id = trainer.eos_id();
  for (const int32_t id : {model.bos_id, model.eos_id}) {
    if (id >= n || (id >= 0 && model.types[id] != PieceType::kControl)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": bos/eos id ", id, " is not a control piece of the ", n, "-piece vocabulary"));
    }
  }
  if (model.bos_id < 0) model.bos_id = -1;
  if (model.eos_id < 0) model.eos_id = -1;
  model.byte_fallback = trainer.byte_fallback();
  if (!model.byte_fallback) {
    for (int i = 0; i < n; ++i) {
      if (model.types[i] == PieceType::kByte) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": byte piece ", model.pieces[i],
                                                       " found although byte_fallback is off"));
      }
    }
  }
  model.add_dummy_prefix = norm.add_dummy_prefix();
  model.remove_extra_whitespaces = norm.remove_extra_whitespaces();
  model.escape_whitespaces = norm.escape_whitespaces();
  model.unk_surface = trainer.unk_surface();
  return model;
}

}  // namespace prunerd
