// File: bpe_tokenizer.cc
#include "core/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"

namespace prunerd {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

std::string BytePiece(int byte) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", byte);
  return buf;
}

// The byte of a "<0xNN>" piece (upper-case hex, as SentencePiece writes them), or -1.
int ParseBytePiece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    value *= 16;
    if (c >= '0' && c <= '9') {
      value += c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value += c - 'A' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

// A candidate merge of two adjacent symbols.
struct Candidate {
  float score;
  uint32_t left_begin;  // text position of the left symbol: the tie-break (leftmost first)
  int32_t left;
  int32_t right;
  uint32_t size;  // byte length of the merged piece when the candidate was made
};

struct CandidateOrder {
  // The heap pops the greatest: highest score, then the smallest position.
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.score != b.score) return a.score < b.score;
    return a.left_begin > b.left_begin;
  }
};

}  // namespace

// One symbol of the text being merged: a span of the normalised text.
struct BpeTokenizer::Symbol {
  uint32_t begin = 0;
  uint32_t len = 0;  // 0 once merged into its left neighbour
  int32_t prev = -1;
  int32_t next = -1;
  bool frozen = false;    // user-defined piece or llama2.c byte token: never merged
  int32_t fixed_id = -1;  // llama2.c byte token: its id
};

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(BpeModel model) {
  std::unique_ptr<BpeTokenizer> tok(new BpeTokenizer(std::move(model)));
  absl::Status status = tok->Init();
  if (!status.ok()) return status;
  return tok;
}

absl::Status BpeTokenizer::Init() {
  const BpeModel& m = model_;
  const size_t n = m.pieces.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer vocabulary is empty");
  if (m.scores.size() != n || m.types.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer vocabulary: ", n, " pieces but ",
                                                   m.scores.size(), " scores and ", m.types.size(),
                                                   " types"));
  }
  if (n > (1u << 30)) return absl::InvalidArgumentError("tokenizer vocabulary too large");
  const int32_t size = static_cast<int32_t>(n);
  if (m.unk_id < 0 || m.unk_id >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("unk_id ", m.unk_id, " outside the vocabulary of ", size));
  }
  for (const auto& [name, id] : {std::pair<const char*, int32_t>{"bos_id", m.bos_id},
                                 std::pair<const char*, int32_t>{"eos_id", m.eos_id}}) {
    if (id < -1 || id >= size) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " ", id, " outside the vocabulary of ", size));
    }
  }
  const bool spm = m.flavor == BpeModel::Flavor::kSentencePiece;
  absl::flat_hash_set<size_t> user_lengths;
  for (int32_t id = 0; id < size; ++id) {
    const std::string& piece = m.pieces[id];
    if (piece.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer piece ", id, " is empty"));
    }
    const PieceType type = m.types[id];
    const bool mergeable = !spm || type == PieceType::kNormal || type == PieceType::kUserDefined ||
                           type == PieceType::kUnused;
    if (mergeable) {
      // The first of duplicate spellings wins (only llama2.c files may have any).
      const bool inserted = merge_ids_.emplace(std::string_view(piece), id).second;
      if (!inserted && spm) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer piece \"", piece, "\" is defined twice (id ", id, ")"));
      }
    }
    if (spm && type == PieceType::kUserDefined) user_lengths.insert(piece.size());
    if (type == PieceType::kUnused) has_unused_ = true;
  }
  // Adjacent character pairs inside mergeable pieces: a merge across two characters of the
  // text is possible only if they form one of these. (Well-formed characters of a piece are
  // always units of this split, since a continuation byte never starts one.)
  for (const auto& [piece, id] : merge_ids_) {
    size_t pos = 0;
    size_t prev = std::string_view::npos;
    while (pos < piece.size()) {
      const size_t len = std::max<size_t>(1, Utf8CharLength(piece, pos));
      if (prev != std::string_view::npos) char_pairs_.insert(piece.substr(prev, pos + len - prev));
      prev = pos;
      pos += len;
    }
  }
  user_defined_lengths_.assign(user_lengths.begin(), user_lengths.end());
  std::sort(user_defined_lengths_.rbegin(), user_defined_lengths_.rend());

  byte_ids_.fill(-1);
  byte_values_.assign(n, -1);
  for (int32_t id = 0; id < size; ++id) {
    if (m.types[id] != PieceType::kByte) continue;
    const int value = ParseBytePiece(m.pieces[id]);
    if (value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("byte piece ", id, " is \"", m.pieces[id], "\", not <0xNN>"));
    }
    byte_values_[id] = static_cast<int16_t>(value);
    if (byte_ids_[value] < 0) byte_ids_[value] = id;
  }
  if (m.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      if (byte_ids_[b] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("byte fallback is on but the byte piece ", BytePiece(b), " is missing"));
      }
    }
  } else {
    byte_ids_.fill(-1);
  }

  if (!spm) {
    display_pieces_.reserve(n);
    for (int32_t id = 0; id < size; ++id) {
      std::string shown;
      const std::string& piece = m.pieces[id];
      if (m.types[id] == PieceType::kControl || m.types[id] == PieceType::kUnknown) {
        // llama2.c writes BOS/EOS as "\n<s>\n" / "\n</s>\n".
        const size_t b = piece.find_first_not_of('\n');
        const size_t e = piece.find_last_not_of('\n');
        shown = b == std::string::npos ? piece : piece.substr(b, e - b + 1);
      } else {
        for (char c : piece) {
          if (c == ' ') {
            shown.append(kSpaceSymbol);
          } else {
            shown.push_back(c);
          }
        }
      }
      display_pieces_.push_back(std::move(shown));
    }
  }
  return absl::OkStatus();
}

std::string BpeTokenizer::Normalize(std::string_view text) const {
  std::string norm;
  if (model_.flavor == BpeModel::Flavor::kLlama2c) {
    if (text.empty()) return norm;
    norm.reserve(text.size() + 1);
    norm.push_back(' ');  // llama2.c's dummy prefix; the text is taken as is
    norm.append(text);
    return norm;
  }
  std::string_view body = text;
  if (model_.remove_extra_whitespaces) {
    const size_t b = body.find_first_not_of(' ');
    if (b == std::string_view::npos) return norm;  // nothing but spaces: empty
    body = body.substr(b, body.find_last_not_of(' ') - b + 1);
  }
  if (body.empty()) return norm;
  const std::string_view space = model_.escape_whitespaces ? kSpaceSymbol : " ";
  norm.reserve(body.size() + body.size() / 4 + 8);
  if (model_.add_dummy_prefix) norm.append(space);
  size_t i = 0;
  while (i < body.size()) {
    const char c = body[i];
    if (c == ' ') {
      // With remove_extra_whitespaces a run of spaces is one.
      if (!model_.remove_extra_whitespaces || i == 0 || body[i - 1] != ' ') norm.append(space);
      ++i;
    } else if (static_cast<uint8_t>(c) < 0x80) {
      norm.push_back(c);
      ++i;
    } else {
      const size_t len = Utf8CharLength(body, i);
      if (len == 0) {
        norm.append(kUtf8Replacement);  // one U+FFFD per malformed byte
        ++i;
      } else {
        norm.append(body.substr(i, len));
        i += len;
      }
    }
  }
  return norm;
}

size_t BpeTokenizer::AppendInitialSymbols(std::string_view norm, size_t pos,
                                          std::vector<Symbol>* out) const {
  Symbol sym;
  sym.begin = static_cast<uint32_t>(pos);
  if (model_.flavor == BpeModel::Flavor::kSentencePiece) {
    // The longest user-defined piece here, kept whole; else one (well-formed) character.
    for (size_t len : user_defined_lengths_) {
      if (pos + len > norm.size()) continue;
      const auto it = merge_ids_.find(norm.substr(pos, len));
      if (it != merge_ids_.end() && model_.types[it->second] == PieceType::kUserDefined) {
        sym.len = static_cast<uint32_t>(len);
        sym.frozen = true;
        out->push_back(sym);
        return pos + len;
      }
    }
    sym.len = static_cast<uint32_t>(std::max<size_t>(1, Utf8CharLength(norm, pos)));
    out->push_back(sym);
    return pos + sym.len;
  }
  // llama2.c: this byte plus the continuation bytes that follow, at most 4 bytes (the dummy
  // prefix at position 0 is a group of its own).
  size_t len = 1;
  while (pos > 0 && len < 4 && pos + len < norm.size() &&
         (static_cast<uint8_t>(norm[pos + len]) & 0xC0) == 0x80) {
    ++len;
  }
  sym.len = static_cast<uint32_t>(len);
  if (merge_ids_.contains(norm.substr(pos, len))) {
    out->push_back(sym);
  } else if (byte_ids_[0] < 0) {  // no byte pieces: the character is <unk>
    sym.frozen = true;
    sym.fixed_id = model_.unk_id;
    out->push_back(sym);
  } else {  // each byte as its byte token (id = byte + 3 in llama2.c files)
    for (size_t i = 0; i < len; ++i) {
      Symbol byte_sym;
      byte_sym.begin = static_cast<uint32_t>(pos + i);
      byte_sym.len = 1;
      byte_sym.frozen = true;
      byte_sym.fixed_id = byte_ids_[static_cast<uint8_t>(norm[pos + i])];
      out->push_back(byte_sym);
    }
  }
  return pos + len;
}

bool BpeTokenizer::HardBoundary(std::string_view norm, const Symbol& left,
                                const Symbol& right) const {
  if (left.frozen || right.frozen) return true;
  // Only between two well-formed characters (always so for SentencePiece; llama2.c groups may
  // be malformed, and then we never cut).
  if (Utf8CharLength(norm, left.begin) != left.len ||
      Utf8CharLength(norm, right.begin) != right.len) {
    return false;
  }
  return !char_pairs_.contains(norm.substr(left.begin, left.len + right.len));
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  if (add_bos && model_.bos_id >= 0) out.push_back(model_.bos_id);
  const std::string norm = Normalize(text);
  if (norm.empty()) return out;
  const std::string_view s = norm;
  out.reserve(out.size() + s.size() / 3 + 16);

  // The text is processed in segments cut at boundaries no merge can cross (a frozen symbol,
  // or two characters adjacent in no piece: in practice every word). Merging each segment on
  // its own gives the same result as one agenda over the whole text, since no candidate ever
  // spans two segments; it keeps the working set small and in cache.
  std::vector<Symbol> seg;        // the current segment's symbols
  std::vector<Candidate> agenda;  // a max-heap in CandidateOrder
  // Unused pieces formed by a merge, with the two pieces they were last formed from (the
  // spelling is the key, as in SentencePiece).
  absl::flat_hash_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
  const auto span = [&](const Symbol& sym) { return s.substr(sym.begin, sym.len); };

  const auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = seg[left];
    const Symbol& r = seg[right];
    if (l.frozen || r.frozen) return;
    const std::string_view merged = s.substr(l.begin, l.len + r.len);
    const auto it = merge_ids_.find(merged);
    if (it == merge_ids_.end()) return;
    agenda.push_back(Candidate{model_.scores[it->second], l.begin, left, right, l.len + r.len});
    std::push_heap(agenda.begin(), agenda.end(), CandidateOrder());
    if (has_unused_ && model_.types[it->second] == PieceType::kUnused) {
      rev_merge[merged] = {span(l), span(r)};
    }
  };

  bool last_unknown = false;
  const auto emit_unknown = [&](std::string_view piece) {
    if (model_.byte_fallback) {
      for (char ch : piece) out.push_back(byte_ids_[static_cast<uint8_t>(ch)]);
    } else if (!last_unknown) {
      out.push_back(model_.unk_id);  // a run of unknown symbols is one <unk>
    }
    last_unknown = true;
  };
  const auto emit = [&](auto&& self, std::string_view piece) -> void {
    const auto it = merge_ids_.find(piece);
    if (it == merge_ids_.end()) {
      emit_unknown(piece);
      return;
    }
    if (has_unused_ && model_.types[it->second] == PieceType::kUnused) {
      const auto rev = rev_merge.find(piece);
      if (rev != rev_merge.end()) {  // re-split an unused piece into what formed it
        self(self, rev->second.first);
        self(self, rev->second.second);
        return;
      }
    }
    out.push_back(it->second);
    last_unknown = false;
  };

  // Merges and emits seg[0, end).
  const auto process = [&](int32_t end) {
    for (int32_t i = 0; i < end; ++i) {
      seg[i].prev = i - 1;
      seg[i].next = i + 1 < end ? i + 1 : -1;
    }
    agenda.clear();
    for (int32_t i = 0; i + 1 < end; ++i) try_pair(i, i + 1);
    while (!agenda.empty()) {
      std::pop_heap(agenda.begin(), agenda.end(), CandidateOrder());
      const Candidate c = agenda.back();
      agenda.pop_back();
      Symbol& l = seg[c.left];
      Symbol& r = seg[c.right];
      // Stale: one side was merged since (lengths only grow, so equal sizes mean unchanged).
      if (l.len == 0 || r.len == 0 || l.len + r.len != c.size) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (l.next >= 0) seg[l.next].prev = c.left;
      try_pair(l.prev, c.left);
      try_pair(c.left, l.next);
    }
    // The first symbol survives every merge (merges keep the left one).
    for (int32_t i = 0; i >= 0; i = seg[i].next) {
      if (seg[i].fixed_id >= 0) {
        out.push_back(seg[i].fixed_id);
        last_unknown = false;
      } else {
        emit(emit, span(seg[i]));
      }
    }
  };

  size_t pos = 0;
  while (pos < s.size()) {
    const size_t before = seg.size();
    pos = AppendInitialSymbols(s, pos, &seg);
    if (before > 0 && HardBoundary(s, seg[before - 1], seg[before])) {
      process(static_cast<int32_t>(before));
      seg.erase(seg.begin(), seg.begin() + before);
    }
  }
  process(static_cast<int32_t>(seg.size()));
  return out;
}

std::string BpeTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string out;
  std::string bytes;  // a pending run of byte pieces
  const auto flush = [&] {
    if (!bytes.empty()) {
      out.append(ReplaceMalformedUtf8(bytes));
      bytes.clear();
    }
  };
  const bool spm = model_.flavor == BpeModel::Flavor::kSentencePiece;
  const bool strip_first = spm ? model_.add_dummy_prefix : true;
  bool first = true;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      flush();
      out.append(model_.unk_surface);
      first = false;
      continue;
    }
    const PieceType type = model_.types[id];
    if (type == PieceType::kControl) continue;
    if (type == PieceType::kByte) {
      bytes.push_back(static_cast<char>(byte_values_[id]));
      first = false;
      continue;
    }
    flush();
    if (type == PieceType::kUnknown) {
      out.append(model_.unk_surface);
      first = false;
      continue;
    }
    std::string text;
    const std::string& p = model_.pieces[id];
    if (spm && model_.escape_whitespaces) {
      text.reserve(p.size());
      for (size_t i = 0; i < p.size();) {
        if (std::string_view(p).substr(i, kSpaceSymbol.size()) == kSpaceSymbol) {
          text.push_back(' ');
          i += kSpaceSymbol.size();
        } else {
          text.push_back(p[i++]);
        }
      }
    } else {
      text = p;
    }
    if (first && strip_first && !text.empty() && text[0] == ' ') text.erase(0, 1);
    first = false;
    out.append(text);
  }
  flush();
  return out;
}

std::string_view BpeTokenizer::Piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  if (!display_pieces_.empty()) return display_pieces_[id];
  return model_.pieces[id];
}

}  // namespace prunerd
