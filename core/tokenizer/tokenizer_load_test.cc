// Tokenizer::Load: format detection and the errors for files that are not tokenizers or use
// SentencePiece features we do not implement.
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "core/testing/test_data.h"
#include "core/tokenizer/spm_model_edit.h"
#include "core/tokenizer/spm_oracle.h"
#include "core/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using testing::ReadFileOrDie;
using testing::WriteFileOrDie;

class TokenizerLoadTest : public ::testing::Test {
 protected:
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Loads `contents` from a file; the error must name the file.
  absl::Status LoadBytes(const std::string& contents) {
    const std::string path = dir_ + "/tok" + std::to_string(counter_++);
    WriteFileOrDie(path, contents);
    absl::Status s = Tokenizer::Load(path).status();
    if (!s.ok()) {
      EXPECT_NE(std::string(s.message()).find(path), std::string::npos) << s;
    }
    return s;
  }
  absl::Status LoadVariant(const std::function<void(spm::ModelProto&)>& edit) {
    const std::string path =
        testing::WriteModelVariant(TestDataPath("models/stories260K/tok512.model"),
                                   dir_ + "/v" + std::to_string(counter_++), edit);
    return Tokenizer::Load(path).status();
  }
  std::string dir_ = testing::MakeTempDir();
  int counter_ = 0;
};

TEST_F(TokenizerLoadTest, DetectsBothFormats) {
  for (const char* path : {"models/stories260K/tok512.model", "models/stories260K/tok512.bin",
                           "models/prose16M/tokenizer.model", "tokenizers/llama2/tokenizer.model",
                           "tokenizers/llama2/tokenizer.bin"}) {
    auto tok = Tokenizer::Load(TestDataPath(path));
    ASSERT_TRUE(tok.ok()) << path << ": " << tok.status();
    EXPECT_EQ((*tok)->bos_id(), 1);
    EXPECT_EQ((*tok)->eos_id(), 2);
    EXPECT_EQ((*tok)->unk_id(), 0);
    EXPECT_EQ((*tok)->Piece(1), "<s>");
  }
  auto prose = Tokenizer::Load(TestDataPath("models/prose16M/tokenizer.model"));
  ASSERT_TRUE(prose.ok());
  EXPECT_EQ((*prose)->vocab_size(), 8192);
}

TEST_F(TokenizerLoadTest, FileErrors) {
  EXPECT_EQ(Tokenizer::Load(dir_ + "/missing.model").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Tokenizer::Load(dir_).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadBytes("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadBytes("this is not a tokenizer at all").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TokenizerLoadTest, TruncatedOrCorruptLlama2cFiles) {
  const std::string bin = ReadFileOrDie(TestDataPath("models/stories260K/tok512.bin"));
  EXPECT_TRUE(LoadBytes(bin).ok());
  EXPECT_EQ(LoadBytes(bin.substr(0, bin.size() - 1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadBytes(bin.substr(0, 4)).code(), absl::StatusCode::kInvalidArgument);
  std::string longer = bin;
  longer[8] = 100;  // the first token's length (1) beyond max_token_length (7)
  EXPECT_EQ(LoadBytes(longer).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TokenizerLoadTest, TruncatedSentencePieceModel) {
  const std::string model = ReadFileOrDie(TestDataPath("models/stories260K/tok512.model"));
  EXPECT_EQ(LoadBytes(model.substr(0, model.size() / 2)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TokenizerLoadTest, UnsupportedSentencePieceFeatures) {
  EXPECT_EQ(LoadVariant([](spm::ModelProto& m) {
              m.mutable_trainer_spec()->set_model_type(spm::TrainerSpec::UNIGRAM);
            }).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(LoadVariant([](spm::ModelProto& m) {
              m.mutable_normalizer_spec()->set_name("nmt_nfkc");
              m.mutable_normalizer_spec()->set_precompiled_charsmap(std::string("\x01\x02\x03", 3));
            }).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(LoadVariant([](spm::ModelProto& m) {
              m.mutable_trainer_spec()->set_treat_whitespace_as_suffix(true);
            }).code(),
            absl::StatusCode::kUnimplemented);
  // Byte pieces without byte fallback (SentencePiece refuses them too).
  EXPECT_EQ(LoadVariant([](spm::ModelProto& m) {
              m.mutable_trainer_spec()->set_byte_fallback(false);
            }).code(),
            absl::StatusCode::kInvalidArgument);
  // A second <unk>.
  EXPECT_EQ(LoadVariant([](spm::ModelProto& m) {
              m.mutable_pieces(5)->set_type(spm::ModelProto::SentencePiece::UNKNOWN);
            }).code(),
            absl::StatusCode::kInvalidArgument);
  // A duplicated piece.
  EXPECT_EQ(LoadVariant([](spm::ModelProto& m) {
              m.mutable_pieces(300)->set_piece(m.pieces(301).piece());
            }).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace prunerd
