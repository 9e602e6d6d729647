// Parity of our SentencePiece BPE with SentencePiece itself, token for token, on every bundled
// text with every bundled .model tokenizer. The oracles run at test time (spm_oracle.h):
// spm_encode line by line and python sentencepiece on the whole file.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/testing/test_data.h"
#include "core/tokenizer/spm_oracle.h"
#include "core/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using testing::DescribeMismatch;
using testing::ReadFileOrDie;

const char* const kModels[] = {
    "models/stories260K/tok512.model",
    "models/prose16M/tokenizer.model",
    "tokenizers/llama2/tokenizer.model",
};
const char* const kTexts[] = {
    "text/wikitext-2-raw/wiki.test.raw",
    "text/wikitext-2/test.txt",
    "text/wikitext-2/valid.txt",
    "text/tinystories/tinystories_val_head.txt",
};

class SentencePieceParityTest
    : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {
 protected:
  void SetUp() override {
    model_path_ = TestDataPath(std::get<0>(GetParam()));
    text_path_ = TestDataPath(std::get<1>(GetParam()));
    auto tok = Tokenizer::Load(model_path_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = std::move(*tok);
    text_ = ReadFileOrDie(text_path_);
  }
  std::string model_path_, text_path_, text_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_P(SentencePieceParityTest, WholeTextMatchesPythonSentencePiece) {
  auto oracle = testing::SpmEncodeWhole(model_path_, {text_path_});
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ours = tok_->Encode(text_, /*add_bos=*/false);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("encoded %zu bytes into %zu tokens in %.1f ms\n", text_.size(), ours.size(), ms);
  ASSERT_FALSE((*oracle)[0].empty());
  EXPECT_EQ(DescribeMismatch((*oracle)[0], ours, *tok_, "whole text"), "");

  // With BOS: exactly one bos_id in front.
  const std::vector<int32_t> with_bos = tok_->Encode(text_, /*add_bos=*/true);
  ASSERT_EQ(with_bos.size(), ours.size() + 1);
  EXPECT_EQ(with_bos[0], tok_->bos_id());
  EXPECT_TRUE(std::equal(ours.begin(), ours.end(), with_bos.begin() + 1));
}

TEST_P(SentencePieceParityTest, EachLineMatchesSpmEncode) {
  auto oracle = testing::SpmEncodeLines(model_path_, text_path_);
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  const std::vector<std::string> lines = testing::SplitLines(text_);
  ASSERT_EQ(oracle->size(), lines.size());
  int mismatches = 0;
  size_t tokens = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::vector<int32_t> ours = tok_->Encode(lines[i], /*add_bos=*/false);
    tokens += ours.size();
    const std::string diff =
        DescribeMismatch((*oracle)[i], ours, *tok_, absl::StrCat("line ", i + 1));
    if (!diff.empty() && ++mismatches <= 3) ADD_FAILURE() << diff;
  }
  EXPECT_EQ(mismatches, 0) << "of " << lines.size() << " lines";
  EXPECT_GT(tokens, lines.size() / 2);
}

INSTANTIATE_TEST_SUITE_P(
    AllModelsAllTexts, SentencePieceParityTest,
    ::testing::Combine(::testing::ValuesIn(kModels), ::testing::ValuesIn(kTexts)),
    [](const ::testing::TestParamInfo<SentencePieceParityTest::ParamType>& info) {
      std::string name = absl::StrCat(std::get<0>(info.param), "_", std::get<1>(info.param));
      for (char& c : name) {
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace prunerd
