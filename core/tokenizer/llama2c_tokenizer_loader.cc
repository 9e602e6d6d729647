// File: llama2c_tokenizer_loader.cc
#include "core/tokenizer/llama2c_tokenizer_loader.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace prunerd {
namespace {

constexpr int32_t kMaxTokenLength = 1 << 16;

int32_t ReadInt32(std::string_view bytes, size_t pos) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[pos + i]);
  return static_cast<int32_t>(v);
}

float ReadFloat32(std::string_view bytes, size_t pos) {
  const uint32_t bits = static_cast<uint32_t>(ReadInt32(bytes, pos));
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace

bool LooksLikeLlama2cTokenizer(std::string_view bytes) {
  if (bytes.size() < 4) return false;
  const int32_t max_len = ReadInt32(bytes, 0);
  return max_len >= 1 && max_len <= kMaxTokenLength;
}

absl::StatusOr<BpeModel> ParseLlama2cTokenizer(std::string_view bytes, const std::string& source) {
  if (!LooksLikeLlama2cTokenizer(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a llama2.c tokenizer (bad max_token_length header)"));
  }
  const int32_t max_len = ReadInt32(bytes, 0);
  BpeModel model;
  model.flavor = BpeModel::Flavor::kLlama2c;
  size_t pos = 4;
  while (pos < bytes.size()) {
    const int64_t id = static_cast<int64_t>(model.pieces.size());
    if (bytes.size() - pos < 8) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": token ", id, " truncated at byte ", pos, " of ", bytes.size()));
    }
    const float score = ReadFloat32(bytes, pos);
    const int32_t len = ReadInt32(bytes, pos + 4);
    pos += 8;
    if (len < 1 || len > max_len) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": token ", id, " has length ", len,
                                                     " (max_token_length ", max_len, ")"));
    }
    if (bytes.size() - pos < static_cast<size_t>(len)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": token ", id, " truncated at byte ", pos, " of ", bytes.size()));
    }
    model.pieces.emplace_back(bytes.substr(pos, len));
    model.scores.push_back(score);
    model.types.push_back(PieceType::kNormal);
    pos += len;
  }
  const int32_t n = static_cast<int32_t>(model.pieces.size());
  if (n < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": llama2.c tokenizer with ", n, " tokens (need <unk>, BOS, EOS)"));
  }
  model.unk_id = 0;
  model.bos_id = 1;
  model.eos_id = 2;
  model.types[0] = PieceType::kUnknown;
  model.types[1] = PieceType::kControl;
  model.types[2] = PieceType::kControl;
  bool bytes_present = n >= 259;
  for (int b = 0; bytes_present && b < 256; ++b) {
    char expected[8];
    std::snprintf(expected, sizeof(expected), "<0x%02X>", b);
    bytes_present = model.pieces[3 + b] == expected;
  }
  if (bytes_present) {
    for (int b = 0; b < 256; ++b) model.types[3 + b] = PieceType::kByte;
  }
  model.byte_fallback = bytes_present;
  model.add_dummy_prefix = true;
  model.remove_extra_whitespaces = false;
  model.escape_whitespaces = false;
  return model;
}

}  // namespace prunerd
