// The llama2.c tokenizer.bin loader and encoder: the files parse exactly, agree piece for piece
// with the matching .model, and encode as SentencePiece does wherever llama2.c's rules agree
// with it; where they legitimately differ (removal of extra spaces, malformed UTF-8) the
// difference is pinned down.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/testing/test_data.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/llama2c_tokenizer_loader.h"
#include "core/tokenizer/spm_model_edit.h"
#include "core/tokenizer/spm_oracle.h"
#include "core/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using testing::DescribeMismatch;
using testing::ReadFileOrDie;

const char* const kTexts[] = {
    "text/wikitext-2-raw/wiki.test.raw",
    "text/wikitext-2/test.txt",
    "text/wikitext-2/valid.txt",
    "text/tinystories/tinystories_val_head.txt",
};

std::unique_ptr<Tokenizer> LoadOrDie(const std::string& relative) {
  auto tok = Tokenizer::Load(TestDataPath(relative));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

const BpeModel& ModelOf(const Tokenizer& tok) {
  return dynamic_cast<const BpeTokenizer&>(tok).model();
}

struct Pair {
  const char* bin;
  const char* model;
  int32_t size;
  int32_t max_token_length;
};
const Pair kPairs[] = {
    {"models/stories260K/tok512.bin", "models/stories260K/tok512.model", 512, 7},
    {"tokenizers/llama2/tokenizer.bin", "tokenizers/llama2/tokenizer.model", 32000, 27},
};

TEST(Llama2cTokenizerTest, ParsesExactlyAndAgreesWithTheModelFile) {
  for (const Pair& p : kPairs) {
    SCOPED_TRACE(p.bin);
    const std::string bytes = ReadFileOrDie(TestDataPath(p.bin));
    ASSERT_TRUE(LooksLikeLlama2cTokenizer(bytes));
    // The header, read by hand: little-endian int32 max_token_length.
    EXPECT_EQ(static_cast<uint8_t>(bytes[0]) | (static_cast<uint8_t>(bytes[1]) << 8),
              p.max_token_length);
    auto bin = LoadOrDie(p.bin);
    auto model = LoadOrDie(p.model);
    ASSERT_TRUE(bin && model);
    ASSERT_EQ(bin->vocab_size(), p.size);
    ASSERT_EQ(model->vocab_size(), p.size);
    // File size = 4 + sum over tokens of (8 + length): the parse consumed every byte.
    size_t expected_size = 4;
    for (const std::string& piece : ModelOf(*bin).pieces) expected_size += 8 + piece.size();
    EXPECT_EQ(expected_size, bytes.size());
    EXPECT_EQ(bin->bos_id(), model->bos_id());
    EXPECT_EQ(bin->eos_id(), model->eos_id());
    EXPECT_EQ(bin->unk_id(), model->unk_id());
    EXPECT_TRUE(ModelOf(*bin).byte_fallback);
    EXPECT_EQ(ModelOf(*bin).pieces[1], "\n<s>\n");
    int piece_mismatches = 0, score_mismatches = 0, type_mismatches = 0;
    for (int32_t id = 0; id < p.size; ++id) {
      piece_mismatches += bin->Piece(id) != model->Piece(id);
      score_mismatches += ModelOf(*bin).scores[id] != ModelOf(*model).scores[id];
      type_mismatches += ModelOf(*bin).types[id] != ModelOf(*model).types[id];
    }
    EXPECT_EQ(piece_mismatches, 0);
    EXPECT_EQ(score_mismatches, 0);
    EXPECT_EQ(type_mismatches, 0);
    EXPECT_EQ(bin->Piece(3), "<0x00>");
    EXPECT_EQ(bin->Piece(13), "<0x0A>");
  }
}

// The byte tokens of a llama2.c file are frozen in our encoder, which is exact when no piece
// could be formed from a "<0xNN>" spelling and a neighbour: no other piece starts with "<0x".
TEST(Llama2cTokenizerTest, ByteTokensCannotTakePartInMerges) {
  for (const Pair& p : kPairs) {
    auto bin = LoadOrDie(p.bin);
    ASSERT_TRUE(bin);
    const BpeModel& m = ModelOf(*bin);
    for (int32_t id = 0; id < bin->vocab_size(); ++id) {
      if (m.types[id] == PieceType::kByte) continue;
      EXPECT_NE(m.pieces[id].rfind("<0x", 0), 0u) << p.bin << " piece " << id;
    }
  }
}

// Compares `bin` on every bundled text: with SentencePiece itself (python, run now) on the
// TinyStories text, and on the three WikiText files with our SentencePiece encoder for
// `model_path` (token-for-token equal to SentencePiece on them: sentencepiece_parity_test and,
// for model variants, sentencepiece_variants_test); running the python oracle on all four
// texts again would double this suite's time.
void ExpectSameEncodings(const Tokenizer& bin, const std::string& model_path) {
  const std::string stories = TestDataPath("text/tinystories/tinystories_val_head.txt");
  auto oracle = testing::SpmEncodeWhole(model_path, {stories});
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  EXPECT_EQ(DescribeMismatch((*oracle)[0], bin.Encode(ReadFileOrDie(stories), false), bin,
                             "tinystories (python sentencepiece)"),
            "");
  auto model = Tokenizer::Load(model_path);
  ASSERT_TRUE(model.ok()) << model.status();
  for (const char* t : kTexts) {
    const std::string text = ReadFileOrDie(TestDataPath(t));
    EXPECT_EQ(DescribeMismatch((*model)->Encode(text, false), bin.Encode(text, false), bin, t), "");
  }
}

// llama2.bin encodes as the LLaMA-2 model on whole texts (that model keeps extra spaces, as
// llama2.c does).
TEST(Llama2cTokenizerTest, Llama2BinMatchesSentencePieceOnAllTexts) {
  auto bin = LoadOrDie("tokenizers/llama2/tokenizer.bin");
  ASSERT_TRUE(bin);
  ExpectSameEncodings(*bin, TestDataPath("tokenizers/llama2/tokenizer.model"));
}

// tok512.model removes extra spaces and llama2.c does not. With that flag off, SentencePiece
// and tok512.bin agree on every text; with it on (the real model) they differ exactly on the
// lines that have leading, trailing or repeated spaces.
TEST(Llama2cTokenizerTest, Tok512BinIsTok512ModelWithoutRemovingExtraSpaces) {
  const std::string dir = testing::MakeTempDir();
  const std::string variant = testing::WriteModelVariant(
      TestDataPath("models/stories260K/tok512.model"), dir + "/keep_spaces.model",
      [](spm::ModelProto& m) { m.mutable_normalizer_spec()->set_remove_extra_whitespaces(false); });
  auto bin = LoadOrDie("models/stories260K/tok512.bin");
  ASSERT_TRUE(bin);
  ExpectSameEncodings(*bin, variant);
  std::filesystem::remove_all(dir);

  auto model = LoadOrDie("models/stories260K/tok512.model");
  ASSERT_TRUE(model);
  const std::vector<std::string> lines =
      testing::SplitLines(ReadFileOrDie(TestDataPath("text/tinystories/tinystories_val_head.txt")));
  int lines_with_extra_spaces = 0, differing = 0;
  for (const std::string& line : lines) {
    const bool extra = !line.empty() && (line.front() == ' ' || line.back() == ' ' ||
                                         line.find("  ") != std::string::npos);
    lines_with_extra_spaces += extra;
    const bool differs = bin->Encode(line, false) != model->Encode(line, false);
    differing += differs;
    if (!extra) {
      EXPECT_FALSE(differs) << line;
    }
  }
  EXPECT_GT(lines_with_extra_spaces, 0);
  EXPECT_EQ(differing, lines_with_extra_spaces);
}

// Malformed UTF-8: SentencePiece turns the byte into U+FFFD (LLaMA-2 has a piece for it,
// 30140), llama2.c keeps the raw byte as its byte token 0xFF + 3 = 258. "▁a" = 263, "b" = 29890.
TEST(Llama2cTokenizerTest, MalformedUtf8StaysRawBytes) {
  auto bin = LoadOrDie("tokenizers/llama2/tokenizer.bin");
  auto model = LoadOrDie("tokenizers/llama2/tokenizer.model");
  ASSERT_TRUE(bin && model);
  EXPECT_EQ(bin->Encode("a\xff"
                        "b",
                        false),
            (std::vector<int32_t>{263, 258, 29890}));
  EXPECT_EQ(model->Encode("a\xff"
                          "b",
                          false),
            (std::vector<int32_t>{263, 30140, 29890}));
}

// llama2.c's own conventions, by hand: the dummy prefix is a " " token that merges (" a" is
// 263), an empty text has no prefix, a character missing from the vocabulary becomes its
// UTF-8 bytes + 3 ("\n" → 13).
TEST(Llama2cTokenizerTest, HandCheckedEncodings) {
  auto bin = LoadOrDie("tokenizers/llama2/tokenizer.bin");
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->Encode("", true), (std::vector<int32_t>{1}));
  EXPECT_EQ(bin->Encode("", false), (std::vector<int32_t>{}));
  EXPECT_EQ(bin->Encode("a", true), (std::vector<int32_t>{1, 263}));
  EXPECT_EQ(bin->Encode("\n", false), (std::vector<int32_t>{29871, 13}));
  // U+1F600 (F0 9F 98 80) is not a LLaMA-2 piece.
  EXPECT_EQ(bin->Encode("\xF0\x9F\x98\x80", false),
            (std::vector<int32_t>{29871, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}));
}

// The greedy sample of stories260K from llama2.c's doc/stories260K.md (shared/data/README.md),
// decoded with tok512.bin and tok512.model.
TEST(Llama2cTokenizerTest, DecodesTheDocumentedStories260KSample) {
  const std::vector<int32_t> ids = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                    315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410,
                                    408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
                                    328, 432, 358, 394, 261, 370, 432, 352};
  const std::string expected =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, r";
  for (const char* path : {"models/stories260K/tok512.bin", "models/stories260K/tok512.model"}) {
    auto tok = LoadOrDie(path);
    ASSERT_TRUE(tok);
    EXPECT_EQ(tok->Decode(ids), expected) << path;
  }
}

}  // namespace
}  // namespace prunerd
