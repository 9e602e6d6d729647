// BpeTokenizer on tiny hand-made vocabularies, where every expected encoding is worked out by
// hand in the comments (the rules themselves were established against SentencePiece: see
// sentencepiece_parity_test.cc and sentencepiece_variants_test.cc).
#include "core/tokenizer/bpe_tokenizer.h"

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace prunerd {
namespace {

constexpr int32_t kByte0 = 3;  // <0x00> is id 3, as in LLaMA's vocabulary

// <unk>, <s>, </s>, then the 256 byte pieces (if `bytes`), then `pieces`.
BpeModel MakeModel(const std::vector<std::tuple<std::string, float, PieceType>>& pieces,
                   bool bytes = true) {
  BpeModel m;
  const auto add = [&](std::string piece, float score, PieceType type) {
    m.pieces.push_back(std::move(piece));
    m.scores.push_back(score);
    m.types.push_back(type);
  };
  add("<unk>", 0, PieceType::kUnknown);
  add("<s>", 0, PieceType::kControl);
  add("</s>", 0, PieceType::kControl);
  if (bytes) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      add(name, 0, PieceType::kByte);
    }
  }
  for (const auto& [piece, score, type] : pieces) add(piece, score, type);
  m.byte_fallback = bytes;
  return m;
}

std::unique_ptr<BpeTokenizer> Create(BpeModel m) {
  auto tok = BpeTokenizer::Create(std::move(m));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

constexpr PieceType N = PieceType::kNormal;
// Ids of the first model: 259 "▁", 260 "a", 261 "b", 262 "c", 263 "ab", 264 "bc", 265 "▁a",
// 266 "abc".
BpeModel AbcModel() {
  return MakeModel({{"\xE2\x96\x81", -10, N},
                    {"a", -11, N},
                    {"b", -12, N},
                    {"c", -13, N},
                    {"ab", -1, N},
                    {"bc", -0.5, N},
                    {"\xE2\x96\x81"
                     "a",
                     -2, N},
                    {"abc", -3, N}});
}

TEST(BpeTokenizerTest, MergesTheBestScoringPairFirst) {
  auto tok = Create(AbcModel());
  ASSERT_TRUE(tok);
  // "abc" → "▁abc" = ▁ a b c. Candidates ▁a -2, ab -1, bc -0.5: bc wins → ▁ a bc.
  // New candidate a+bc = abc -3; ▁a -2 wins → ▁a bc; "▁abc" is no piece: done.
  EXPECT_EQ(tok->Encode("abc", false), (std::vector<int32_t>{265, 264}));
  EXPECT_EQ(tok->Encode("abc", true), (std::vector<int32_t>{1, 265, 264}));
  // "ab" → ▁ a b: ab -1 beats ▁a -2 → ▁ ab; "▁ab" is no piece.
  EXPECT_EQ(tok->Encode("ab", false), (std::vector<int32_t>{259, 263}));
  // "a b" → ▁ a ▁ b: ▁a → ▁a ▁ b.
  EXPECT_EQ(tok->Encode("a b", false), (std::vector<int32_t>{265, 259, 261}));
}

TEST(BpeTokenizerTest, TiesGoToTheLeftmostPair) {
  BpeModel m = MakeModel({{"a", -11, N}, {"ab", -1, N}, {"ba", -1, N}});
  m.add_dummy_prefix = false;
  auto tok = Create(std::move(m));
  ASSERT_TRUE(tok);
  // a=259 ab=260 ba=261. "aba": ab and ba tie at -1; the left one wins → ab a.
  EXPECT_EQ(tok->Encode("aba", false), (std::vector<int32_t>{260, 259}));
  // "bab": b a b → ba (left) then "b" alone: b is no piece → <0x62>.
  EXPECT_EQ(tok->Encode("bab", false), (std::vector<int32_t>{261, kByte0 + 'b'}));
}

TEST(BpeTokenizerTest, EmptyTextAndSpacesOnly) {
  auto tok = Create(AbcModel());
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->Encode("", false), (std::vector<int32_t>{}));
  EXPECT_EQ(tok->Encode("", true), (std::vector<int32_t>{1}));
  // Without removal of extra spaces " " is "▁▁" → two ▁.
  EXPECT_EQ(tok->Encode(" ", false), (std::vector<int32_t>{259, 259}));
  BpeModel m = AbcModel();
  m.remove_extra_whitespaces = true;
  auto trimmed = Create(std::move(m));
  ASSERT_TRUE(trimmed);
  EXPECT_EQ(trimmed->Encode("   ", false), (std::vector<int32_t>{}));
}

TEST(BpeTokenizerTest, RemoveExtraWhitespaces) {
  BpeModel m = AbcModel();
  m.remove_extra_whitespaces = true;
  auto tok = Create(std::move(m));
  ASSERT_TRUE(tok);
  // "  a  b  " → "a b" → "▁a▁b" → ▁a ▁ b.
  EXPECT_EQ(tok->Encode("  a  b  ", false), (std::vector<int32_t>{265, 259, 261}));
  // Only U+0020 counts: a tab stays (and is a byte token), spaces around it stay single.
  EXPECT_EQ(tok->Encode("a \t b", false),
            (std::vector<int32_t>{265, 259, kByte0 + '\t', 259, 261}));
  auto keep = Create(AbcModel());
  ASSERT_TRUE(keep);
  // "▁▁▁a▁▁b▁▁": ▁a is the only merge.
  EXPECT_EQ(keep->Encode("  a  b  ", false),
            (std::vector<int32_t>{259, 259, 265, 259, 259, 261, 259, 259}));
}

TEST(BpeTokenizerTest, NewlinesAreByteTokensWithoutDummyPrefixAfterThem) {
  auto tok = Create(AbcModel());
  ASSERT_TRUE(tok);
  // "a\nab" → "▁a\nab": ▁a, <0x0A>, ab (no ▁ after the newline).
  EXPECT_EQ(tok->Encode("a\nab", false), (std::vector<int32_t>{265, kByte0 + 10, 263}));
  // Only newlines: the dummy prefix, then one byte token each.
  EXPECT_EQ(tok->Encode("\n\n", false), (std::vector<int32_t>{259, kByte0 + 10, kByte0 + 10}));
}

TEST(BpeTokenizerTest, ByteFallbackAndUnknownRuns) {
  auto tok = Create(AbcModel());
  ASSERT_TRUE(tok);
  // é = C3 A9 is no piece: ▁, <0xC3>, <0xA9>.
  EXPECT_EQ(tok->Encode("\xC3\xA9", false),
            (std::vector<int32_t>{259, kByte0 + 0xC3, kByte0 + 0xA9}));
  // A malformed byte is U+FFFD (EF BF BD) first.
  EXPECT_EQ(tok->Encode("a\xFF", false),
            (std::vector<int32_t>{265, kByte0 + 0xEF, kByte0 + 0xBF, kByte0 + 0xBD}));

  // Without byte pieces: ids 3.. are the pieces; a run of unknown characters is one <unk>.
  BpeModel m = MakeModel({{"\xE2\x96\x81", -10, N}, {"a", -11, N}}, /*bytes=*/false);
  auto nobytes = Create(std::move(m));
  ASSERT_TRUE(nobytes);
  // "ééaé" → ▁ é é a é → 3, unk (for é é), 4, unk.
  EXPECT_EQ(nobytes->Encode("\xC3\xA9\xC3\xA9"
                            "a\xC3\xA9",
                            false),
            (std::vector<int32_t>{3, 0, 4, 0}));
}

TEST(BpeTokenizerTest, UnknownCharactersStillMergeIntoPieces) {
  // "x" is not a piece but "xa" is: ▁ x a → xa (SentencePiece looks up concatenations only).
  auto tok = Create(MakeModel({{"\xE2\x96\x81", -10, N}, {"a", -11, N}, {"xa", -5, N}}));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->Encode("xa", false), (std::vector<int32_t>{259, 261}));
}

TEST(BpeTokenizerTest, UserDefinedPiecesAreMatchedWholeAndNeverMerged) {
  const auto model = [](PieceType bc_type) {
    return MakeModel({{"\xE2\x96\x81", -10, N},
                      {"a", -11, N},
                      {"b", -12, N},
                      {"c", -13, N},
                      {"\xE2\x96\x81"
                       "a",
                       -2, N},
                      {"bc", 0, bc_type},
                      {"abc", -0.1f, N}});
  };
  // ▁=259 a=260 b=261 c=262 ▁a=263 bc=264 abc=265.
  // Normal "bc": ▁ a b c → bc (0) → a+bc = abc (-0.1) → ▁ abc.
  auto normal = Create(model(N));
  ASSERT_TRUE(normal);
  EXPECT_EQ(normal->Encode("abc", false), (std::vector<int32_t>{259, 265}));
  // User-defined "bc": ▁ a [bc]; bc takes part in no merge → ▁a [bc].
  auto user = Create(model(PieceType::kUserDefined));
  ASSERT_TRUE(user);
  EXPECT_EQ(user->Encode("abc", false), (std::vector<int32_t>{263, 264}));
  EXPECT_EQ(user->Encode("bcbc", false), (std::vector<int32_t>{259, 264, 264}));
}

TEST(BpeTokenizerTest, UnusedPiecesAreSplitBackIntoWhatFormedThem) {
  // The experiment of tok512 with "he" and "▁the" unused, in small:
  // ▁=259 t=260 h=261 e=262 ▁t=263 he=264 (unused) ▁the=265 (unused) ▁th=266.
  auto tok = Create(MakeModel({{"\xE2\x96\x81", -10, N},
                               {"t", -11, N},
                               {"h", -12, N},
                               {"e", -13, N},
                               {"\xE2\x96\x81"
                                "t",
                                0, N},
                               {"he", -1, PieceType::kUnused},
                               {"\xE2\x96\x81"
                                "the",
                                -6, PieceType::kUnused},
                               {"\xE2\x96\x81"
                                "th",
                                -49, N}}));
  ASSERT_TRUE(tok);
  // ▁ t h e → ▁t (0) → he (-1, unused pieces still merge) → ▁the (-6) → emitted as ▁t + he →
  // ▁t, h, e. ▁th (-49) is never formed: merges do not skip unused pieces.
  EXPECT_EQ(tok->Encode("the", false), (std::vector<int32_t>{263, 261, 262}));
  // A single unused character that nothing formed is emitted as is: "e" alone → ▁ e.
  BpeModel m = MakeModel({{"\xE2\x96\x81", -10, N}, {"e", -13, PieceType::kUnused}});
  auto single = Create(std::move(m));
  ASSERT_TRUE(single);
  EXPECT_EQ(single->Encode("e", false), (std::vector<int32_t>{259, 260}));
}

TEST(BpeTokenizerTest, Decode) {
  auto tok = Create(AbcModel());
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->Decode({1, 265, 264}), "abc");  // BOS dropped, dummy prefix dropped
  EXPECT_EQ(tok->Decode({259, 265}), " a");      // only the first piece loses its space
  EXPECT_EQ(tok->Decode({265, 259, 261}), "a b");
  EXPECT_EQ(tok->Decode({kByte0 + 0xC3, kByte0 + 0xA9}), "\xC3\xA9");
  EXPECT_EQ(tok->Decode({kByte0 + 0xC3, 265}), "\xEF\xBF\xBD a");  // a lone lead byte
  EXPECT_EQ(tok->Decode({265, 0}), "a \xE2\x81\x87 ");             // <unk>
  EXPECT_EQ(tok->Decode({}), "");
  for (const std::string text : {"abc", "ab c\n\nba", " a\tb ", "\xC3\xA9t\xC3\xA9"}) {
    EXPECT_EQ(tok->Decode(tok->Encode(text, true)), text);
  }
  EXPECT_EQ(tok->Piece(265),
            "\xE2\x96\x81"
            "a");
  EXPECT_EQ(tok->Piece(kByte0 + 10), "<0x0A>");
  EXPECT_EQ(tok->Piece(-1), "");
  EXPECT_EQ(tok->Piece(tok->vocab_size()), "");
}

TEST(BpeTokenizerTest, RejectsBrokenModels) {
  {
    BpeModel m = AbcModel();
    m.pieces.push_back("x");
    EXPECT_FALSE(BpeTokenizer::Create(std::move(m)).ok());  // arrays of different sizes
  }
  {
    BpeModel m = MakeModel({{"a", 0, N}, {"a", -1, N}});
    EXPECT_FALSE(BpeTokenizer::Create(std::move(m)).ok());  // duplicate piece
  }
  {
    BpeModel m = MakeModel({{"", 0, N}});
    EXPECT_FALSE(BpeTokenizer::Create(std::move(m)).ok());  // empty piece
  }
  {
    BpeModel m = MakeModel({{"a", 0, N}}, /*bytes=*/false);
    m.byte_fallback = true;  // but no byte pieces
    auto status = BpeTokenizer::Create(std::move(m)).status();
    EXPECT_NE(std::string(status.message()).find("<0x00>"), std::string::npos) << status;
  }
  {
    BpeModel m = AbcModel();
    m.unk_id = 100000;
    EXPECT_FALSE(BpeTokenizer::Create(std::move(m)).ok());
  }
  {
    BpeModel m = AbcModel();
    m.pieces[5] = "<0xZZ>";  // a byte piece that is not <0xNN>
    EXPECT_FALSE(BpeTokenizer::Create(std::move(m)).ok());
  }
}

}  // namespace
}  // namespace prunerd
