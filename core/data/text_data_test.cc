#include "core/data/text_data.h"

#include <fstream>

#include "core/io/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

// One token per byte (id = byte + 3), BOS = 1: token counts are checkable by hand.
class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> ids;
    if (add_bos) ids.push_back(1);
    for (unsigned char c : text) ids.push_back(c + 3);
    return ids;
  }
  std::string Decode(const std::vector<int32_t>&) const override { return ""; }
  std::string_view Piece(int32_t) const override { return ""; }
  int32_t vocab_size() const override { return 259; }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  int32_t unk_id() const override { return 0; }
};

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(TextDataTest, EvalWindowsCutsTheStreamAndDropsTheRemainder) {
  ByteTokenizer tok;
  // 9 bytes + BOS = 10 tokens; T = 4 → 2 windows, 2 tokens dropped.
  auto corpus = LoadCorpus(WriteFile("nine.txt", "abcdefghi"), &tok, 259);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(corpus->num_tokens(), 10);
  auto w = EvalWindows(*corpus, 4);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->windows, 2);
  EXPECT_THAT(w->ids, ::testing::ElementsAre(1, 'a' + 3, 'b' + 3, 'c' + 3, 'd' + 3, 'e' + 3,
                                             'f' + 3, 'g' + 3));
  auto one = EvalWindows(*corpus, 4, /*max_windows=*/1);
  EXPECT_EQ(one->windows, 1);
  EXPECT_EQ(one->ids.size(), 4u);
  EXPECT_THAT(std::string(EvalWindows(*corpus, 11).status().message()),
              HasSubstr("fewer than one window of 11"));
}

TEST(TextDataTest, ErrorsNameTheFile) {
  ByteTokenizer tok;
  auto empty = LoadCorpus(WriteFile("empty.txt", ""), &tok, 259);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("empty.txt: the file is empty"));

  auto bad_json = LoadCorpus(WriteFile("bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": 1}\n"), &tok, 259);
  EXPECT_THAT(std::string(bad_json.status().message()), HasSubstr("bad.jsonl:2"));

  auto vocab = LoadCorpus(WriteFile("v.txt", "abc"), &tok, 50);  // 'a' + 3 = 100 >= 50
  EXPECT_THAT(std::string(vocab.status().message()), HasSubstr("outside the vocabulary"));

  EXPECT_EQ(LoadCorpus(::testing::TempDir() + "/missing.txt", &tok, 259).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TextDataTest, JsonlKeepsDocumentsApart) {
  ByteTokenizer tok;
  auto c = LoadCorpus(WriteFile("docs.jsonl", "{\"text\": \"ab\"}\n\n{\"text\": \"cdef\"}\n"),
                      &tok, 259);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->documents.size(), 2u);
  EXPECT_EQ(c->documents[0].size(), 3u);  // BOS + 2
  EXPECT_EQ(c->documents[1].size(), 5u);  // BOS + 4
  // Only the second document is longer than 4 tokens: every window comes from it.
  auto w = SampleCalibration(*c, 8, 4, 0);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::vector<int32_t>& d = c->documents[1];
  for (int64_t i = 0; i < 8; ++i) {
    // A 5-token document leaves offset 0 only (offsets are drawn in [0, size - T)).
    EXPECT_TRUE(std::equal(w->row(i), w->row(i) + 4, d.begin())) << "window " << i;
  }
  EXPECT_THAT(std::string(SampleCalibration(*c, 2, 5, 0).status().message()),
              HasSubstr("longer than seqlen 5"));
}

TEST(TextDataTest, CalibrationIsSeededAndInsideTheStream) {
  ByteTokenizer tok;
  std::string text;
  for (int i = 0; i < 500; ++i) text += static_cast<char>('a' + i % 26);
  auto c = LoadCorpus(WriteFile("long.txt", text), &tok, 259);
  ASSERT_TRUE(c.ok());
  auto a = SampleCalibration(*c, 16, 32, 7);
  auto b = SampleCalibration(*c, 16, 32, 7);
  auto d = SampleCalibration(*c, 16, 32, 8);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  EXPECT_EQ(a->ids, b->ids);
  EXPECT_NE(a->ids, d->ids);
  const std::vector<int32_t>& s = c->documents[0];
  for (int64_t i = 0; i < 16; ++i) {
    auto it = std::search(s.begin(), s.end(), a->row(i), a->row(i) + 32);
    EXPECT_NE(it, s.end()) << "window " << i << " is not a substring of the stream";
  }
  EXPECT_FALSE(SampleCalibration(*c, 0, 32, 0).ok());
  EXPECT_FALSE(SampleCalibration(*c, 4, 1, 0).ok());
}

TEST(TextDataTest, PreTokenizedWindowsAndStreams) {
  std::vector<int64_t> win = {1, 5, 6, 7, 1, 8, 9, 10};  // [2, 4] int64
  std::vector<int32_t> stream = {1, 4, 5, 6, 7, 8, 9};   // [7] int32
  const std::string p2 = ::testing::TempDir() + "/win.safetensors";
  const std::string p1 = ::testing::TempDir() + "/stream.safetensors";
  ASSERT_TRUE(SafetensorsWriter::Write(
                  p2, {{"input_ids", TensorView{DType::kI64, {2, 4}, win.data(), win.size() * 8}}})
                  .ok());
  ASSERT_TRUE(SafetensorsWriter::Write(
                  p1, {{"input_ids", TensorView{DType::kI32, {7}, stream.data(), stream.size() * 4}}})
                  .ok());
  auto c2 = LoadCorpus(p2, nullptr, 32);
  ASSERT_TRUE(c2.ok()) << c2.status();
  auto w = SampleCalibration(*c2, 2, 4, 123);  // used as given, seed irrelevant
  ASSERT_TRUE(w.ok());
  EXPECT_THAT(w->ids, ::testing::ElementsAre(1, 5, 6, 7, 1, 8, 9, 10));
  EXPECT_FALSE(SampleCalibration(*c2, 3, 4, 0).ok());
  auto c1 = LoadCorpus(p1, nullptr, 32);
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(EvalWindows(*c1, 3)->windows, 2);
  EXPECT_THAT(std::string(LoadCorpus(p1, nullptr, 5).status().message()),
              HasSubstr("outside the vocabulary"));
}

}  // namespace
}  // namespace prunerd
