// SentencePiece rules that the bundled texts do not exercise, checked against SentencePiece
// itself (python sentencepiece on whole texts, spm_encode per line): edge-case texts on the
// bundled models, and variants of the bundled models (pieces made USER_DEFINED or UNUSED, no
// byte fallback, normaliser flags flipped) written with our own ModelProto schema.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/testing/test_data.h"
#include "core/tokenizer/spm_model_edit.h"
#include "core/tokenizer/spm_oracle.h"
#include "core/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using testing::DescribeMismatch;
using testing::ReadFileOrDie;
using testing::WriteFileOrDie;

// Single-line edge cases (no '\n', so spm_encode can take them one per line too).
const std::vector<std::string>& LineCases() {
  static const auto* cases = new std::vector<std::string>{
      "",
      " ",
      "   ",
      "a",
      " a",
      "  leading, trailing and  double   spaces  ",
      "tab\tseparated\tvalues\t",
      "na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x93 \xE2\x80\x9Cquotes\xE2\x80\x9D",  // naïve café – “”
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E and \xF0\x9F\x98\x80 emoji",       // 日本語 😀
      "\x01\x02 control bytes \x7F",  // bytes no vocabulary has as pieces
      "malformed: a\xFF"
      "b \xC3( \xE2\x82 \xED\xA0\x80 \xC0\x80 end",
      "\xE2\x96\x81 literal \xE2\x96\x81\xE2\x96\x81 U+2581",
      "<s> </s> <unk> <0x0A> look like pieces",
      "12345 67.890 1,000,000",
      "the there these then hehe heee eeee eeeee zzz z zz dq dqz xdq beet deed queen",
      "Hello World! It's a TEST, isn't it? (yes) [no] {maybe} #1 @2 $3 %4 ^5 &6 *7",
  };
  return *cases;
}

// Multi-line cases (whole-text oracle only).
const std::vector<std::string>& TextCases() {
  static const auto* cases = new std::vector<std::string>{
      "\n",
      "\n\n\n",
      " \n ",
      "a\n b",
      "a \n b",
      "first line\n\nsecond\r\nthird \n",
      "\n\n = Heading = \n\n text after heading . \n",
  };
  return *cases;
}

class OracleCompare {
 public:
  OracleCompare() : dir_(testing::MakeTempDir()) {}
  ~OracleCompare() { std::filesystem::remove_all(dir_); }
  const std::string& dir() const { return dir_; }

  // Compares our encoding of every text with python sentencepiece on whole texts.
  void CompareWhole(const std::string& model_path, const std::vector<std::string>& texts) {
    auto tok = Tokenizer::Load(model_path);
    ASSERT_TRUE(tok.ok()) << tok.status();
    std::vector<std::string> paths;
    for (size_t i = 0; i < texts.size(); ++i) {
      paths.push_back(absl::StrCat(dir_, "/text", counter_++, ".txt"));
      WriteFileOrDie(paths.back(), texts[i]);
    }
    auto oracle = testing::SpmEncodeWhole(model_path, paths);
    ASSERT_TRUE(oracle.ok()) << oracle.status();
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(DescribeMismatch((*oracle)[i], (*tok)->Encode(texts[i], false), **tok,
                                 absl::StrCat("text \"", texts[i].substr(0, 60), "\"")),
                "");
    }
  }

  // Compares our encoding of every line with spm_encode.
  void CompareLines(const std::string& model_path, const std::vector<std::string>& lines) {
    auto tok = Tokenizer::Load(model_path);
    ASSERT_TRUE(tok.ok()) << tok.status();
    const std::string path = absl::StrCat(dir_, "/lines", counter_++, ".txt");
    WriteFileOrDie(path, absl::StrJoin(lines, "\n") + "\n");
    auto oracle = testing::SpmEncodeLines(model_path, path);
    ASSERT_TRUE(oracle.ok()) << oracle.status();
    ASSERT_EQ(oracle->size(), lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      EXPECT_EQ(DescribeMismatch((*oracle)[i], (*tok)->Encode(lines[i], false), **tok,
                                 absl::StrCat("line \"", lines[i], "\"")),
                "");
    }
  }

 private:
  std::string dir_;
  int counter_ = 0;
};

const char* const kModels[] = {
    "models/stories260K/tok512.model",
    "models/prose16M/tokenizer.model",
    "tokenizers/llama2/tokenizer.model",
};

TEST(SentencePieceVariantsTest, EdgeCaseTextsOnBundledModels) {
  OracleCompare compare;
  std::vector<std::string> all = LineCases();
  all.insert(all.end(), TextCases().begin(), TextCases().end());
  for (const char* model : kModels) {
    SCOPED_TRACE(model);
    compare.CompareWhole(TestDataPath(model), all);
    compare.CompareLines(TestDataPath(model), LineCases());
  }
}

// The TinyStories file's non-ASCII characters (621 of them, data/README.md) reach the
// tokenizer: tok512 has pieces for some (’ “ ” ...), the others go to byte fallback, so both
// paths are exercised by the parity test on that file.
TEST(SentencePieceVariantsTest, TinyStoriesNonAsciiCharactersUseByteFallback) {
  const std::string text = ReadFileOrDie(TestDataPath("text/tinystories/tinystories_val_head.txt"));
  int non_ascii_chars = 0;
  for (char c : text) {
    // Count lead bytes of multi-byte characters.
    non_ascii_chars += (static_cast<uint8_t>(c) & 0xC0) == 0xC0;
  }
  EXPECT_EQ(non_ascii_chars, 621);
  auto tok = Tokenizer::Load(TestDataPath("models/stories260K/tok512.model"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  int byte_tokens = 0;
  for (int32_t id : (*tok)->Encode(text, false)) byte_tokens += id >= 3 && id < 259 && id != 13;
  EXPECT_GT(byte_tokens, 0);
}

// The text every variant is checked on: the edge cases plus slices of real text.
std::vector<std::string> VariantTexts() {
  std::vector<std::string> texts = LineCases();
  texts.insert(texts.end(), TextCases().begin(), TextCases().end());
  texts.push_back(
      ReadFileOrDie(TestDataPath("text/wikitext-2-raw/wiki.test.raw")).substr(0, 40000));
  texts.push_back(
      ReadFileOrDie(TestDataPath("text/tinystories/tinystories_val_head.txt")).substr(0, 40000));
  return texts;
}

using Edit = std::function<void(spm::ModelProto&)>;

void SetType(spm::ModelProto& m, const std::string& piece,
             spm::ModelProto::SentencePiece::Type type) {
  for (auto& p : *m.mutable_pieces()) {
    if (p.piece() == piece) {
      p.set_type(type);
      return;
    }
  }
  FAIL() << "no piece " << piece;
}

void CheckVariant(const char* base, const Edit& edit) {
  OracleCompare compare;
  const std::string path =
      testing::WriteModelVariant(TestDataPath(base), compare.dir() + "/variant.model", edit);
  compare.CompareWhole(path, VariantTexts());
  compare.CompareLines(path, LineCases());
}

TEST(SentencePieceVariantsTest, UnusedPieces) {
  CheckVariant("models/stories260K/tok512.model", [](spm::ModelProto& m) {
    SetType(m, "he", spm::ModelProto::SentencePiece::UNUSED);
    SetType(m, "\xE2\x96\x81the", spm::ModelProto::SentencePiece::UNUSED);
    SetType(m, "e", spm::ModelProto::SentencePiece::UNUSED);
  });
  CheckVariant("tokenizers/llama2/tokenizer.model", [](spm::ModelProto& m) {
    SetType(m, "er", spm::ModelProto::SentencePiece::UNUSED);
    SetType(m, "\xE2\x96\x81the", spm::ModelProto::SentencePiece::UNUSED);
    SetType(m, "in", spm::ModelProto::SentencePiece::UNUSED);
  });
}

TEST(SentencePieceVariantsTest, UserDefinedPieces) {
  CheckVariant("models/stories260K/tok512.model", [](spm::ModelProto& m) {
    SetType(m, "he", spm::ModelProto::SentencePiece::USER_DEFINED);
    for (const char* piece : {"ee", "eee",
                              "\xE2\x96\x81"
                              "dq",
                              "zz", "<s> </s>", "\xF0\x9F\x98\x80"}) {
      auto* p = m.add_pieces();
      p->set_piece(piece);
      p->set_score(0);
      p->set_type(spm::ModelProto::SentencePiece::USER_DEFINED);
    }
  });
}

TEST(SentencePieceVariantsTest, NoByteFallback) {
  // SentencePiece refuses BYTE pieces without byte fallback: make them UNUSED.
  CheckVariant("models/stories260K/tok512.model", [](spm::ModelProto& m) {
    m.mutable_trainer_spec()->set_byte_fallback(false);
    for (auto& p : *m.mutable_pieces()) {
      if (p.type() == spm::ModelProto::SentencePiece::BYTE) {
        p.set_type(spm::ModelProto::SentencePiece::UNUSED);
      }
    }
  });
}

TEST(SentencePieceVariantsTest, NormalizerFlags) {
  CheckVariant("tokenizers/llama2/tokenizer.model", [](spm::ModelProto& m) {
    m.mutable_normalizer_spec()->set_add_dummy_prefix(false);
  });
  CheckVariant("tokenizers/llama2/tokenizer.model", [](spm::ModelProto& m) {
    m.mutable_normalizer_spec()->set_remove_extra_whitespaces(true);
  });
  CheckVariant("models/prose16M/tokenizer.model", [](spm::ModelProto& m) {
    m.mutable_normalizer_spec()->set_escape_whitespaces(false);
  });
  CheckVariant("models/stories260K/tok512.model", [](spm::ModelProto& m) {
    m.mutable_normalizer_spec()->set_remove_extra_whitespaces(false);
    m.mutable_normalizer_spec()->set_add_dummy_prefix(false);
  });
}

}  // namespace
}  // namespace prunerd
