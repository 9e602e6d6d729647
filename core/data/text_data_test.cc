// Corpora, windows and calibration sampling. Most cases use a tokenizer with one token per byte
// (id = byte + 3, BOS = 1) so that every count and every window can be cut by hand; the
// WikiText-2 protocol is also checked on a real text against SentencePiece's own ids.
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/data/text_data.h"
#include "core/io/safetensors.h"
#include "core/testing/temp_dir.h"
#include "core/testing/test_data.h"
#include "core/tokenizer/spm_oracle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int32_t B = 1;  // BOS
constexpr int32_t T(char c) { return static_cast<unsigned char>(c) + 3; }

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> ids;
    if (add_bos) ids.push_back(B);
    for (unsigned char c : text) ids.push_back(c + 3);
    return ids;
  }
  std::string Decode(const std::vector<int32_t>&) const override { return ""; }
  std::string_view Piece(int32_t) const override { return ""; }
  int32_t vocab_size() const override { return 259; }
  int32_t bos_id() const override { return B; }
  int32_t eos_id() const override { return 2; }
  int32_t unk_id() const override { return 0; }
};

class TextDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    dir_ = tmp_.path();
  }

  std::string Write(const std::string& name, const std::string& contents) {
    return tmp_.Write(name, contents);
  }
  template <typename Int>
  std::string WriteIds(const std::string& name, DType dtype, std::vector<int64_t> shape,
                       const std::vector<Int>& ids) {
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(SafetensorsWriter::Write(
                    path, {{"input_ids", TensorView{dtype, std::move(shape), ids.data(),
                                                    ids.size() * sizeof(Int)}}})
                    .ok());
    return path;
  }
  std::string Message(const absl::Status& s) { return std::string(s.message()); }

  ByteTokenizer tok_;
  TempDir tmp_;
  std::string dir_;
};

TEST_F(TextDataTest, EvalWindowsAreAHandCutOfTheStream) {
  // 9 bytes + BOS = 10 tokens; T = 4 → floor(10 / 4) = 2 windows, "hi" dropped.
  const std::string path = Write("nine.txt", "abcdefghi");
  auto corpus = LoadCorpus(path, &tok_, 259);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(corpus->source, path);
  EXPECT_EQ(corpus->num_tokens(), 10);
  auto w = EvalWindows(*corpus, 4);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->windows, 2);
  EXPECT_EQ(w->seqlen, 4);
  EXPECT_THAT(w->ids, ElementsAre(B, T('a'), T('b'), T('c'), T('d'), T('e'), T('f'), T('g')));
  EXPECT_EQ(w->row(1)[0], T('d'));
  // T = 5: exactly 2 windows, nothing dropped; T = 10: one window; T = 3: 3 windows.
  EXPECT_EQ(EvalWindows(*corpus, 5)->windows, 2);
  EXPECT_EQ(EvalWindows(*corpus, 10)->windows, 1);
  EXPECT_EQ(EvalWindows(*corpus, 3)->windows, 3);
  auto one = EvalWindows(*corpus, 4, /*max_windows=*/1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->windows, 1);
  EXPECT_THAT(one->ids, ElementsAre(B, T('a'), T('b'), T('c')));
  EXPECT_EQ(EvalWindows(*corpus, 4, /*max_windows=*/5)->windows, 2);
}

// The WikiText-2 protocol on a real text: BOS + SentencePiece's own ids of the whole file
// (python sentencepiece, run now), cut into floor(n / T) windows.
TEST_F(TextDataTest, EvalWindowsOnARealTextMatchSentencePiece) {
  const std::string model = TestDataPath("models/stories260K/tok512.model");
  const std::string text = TestDataPath("text/tinystories/tinystories_val_head.txt");
  auto oracle = testing::SpmEncodeWhole(model, {text});
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  std::vector<int32_t> stream = {B};
  stream.insert(stream.end(), (*oracle)[0].begin(), (*oracle)[0].end());

  auto tokenizer = Tokenizer::Load(model);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto corpus = LoadCorpus(text, tokenizer->get(), 512);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(corpus->num_tokens(), static_cast<int64_t>(stream.size()));
  const int64_t seqlen = 512;
  auto w = EvalWindows(*corpus, seqlen);
  ASSERT_TRUE(w.ok()) << w.status();
  const int64_t expected_windows = static_cast<int64_t>(stream.size()) / seqlen;
  ASSERT_EQ(w->windows, expected_windows);
  ASSERT_GT(expected_windows, 100);
  EXPECT_TRUE(std::equal(w->ids.begin(), w->ids.end(), stream.begin()));
  EXPECT_EQ(w->row(0)[0], B);  // one BOS, at the very start only
  EXPECT_EQ(std::count(w->ids.begin(), w->ids.end(), B), 1);
}

TEST_F(TextDataTest, JsonlDocumentsApartAndJoinedForEvaluation) {
  const std::string path =
      Write("docs.jsonl", "{\"text\": \"ab\"}\n\n  \n{\"id\": 7, \"text\": \"cdef\"}\r\n");
  auto c = LoadCorpus(path, &tok_, 259);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->documents.size(), 2u);  // blank lines skipped, CRLF accepted
  EXPECT_THAT(c->documents[0], ElementsAre(B, T('a'), T('b')));
  EXPECT_THAT(c->documents[1], ElementsAre(B, T('c'), T('d'), T('e'), T('f')));
  // Evaluation tokenizes "ab\n\ncdef" once, with one BOS.
  EXPECT_THAT(c->joined,
              ElementsAre(B, T('a'), T('b'), T('\n'), T('\n'), T('c'), T('d'), T('e'), T('f')));
  auto w = EvalWindows(*c, 4);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(w->ids, ElementsAre(B, T('a'), T('b'), T('\n'), T('\n'), T('c'), T('d'), T('e')));

  // With SentencePiece the joined text is not the concatenation of the documents: "cdef"
  // alone gets a dummy prefix, after "\n\n" it does not.
  auto sp = Tokenizer::Load(TestDataPath("models/stories260K/tok512.model"));
  ASSERT_TRUE(sp.ok());
  auto real = LoadCorpus(path, sp->get(), 512);
  ASSERT_TRUE(real.ok()) << real.status();
  EXPECT_EQ(real->joined, (*sp)->Encode("ab\n\ncdef", true));
  std::vector<int32_t> concatenated = real->documents[0];
  concatenated.insert(concatenated.end(), real->documents[1].begin(), real->documents[1].end());
  EXPECT_NE(real->joined, concatenated);

  // One document: it is the stream.
  auto single = LoadCorpus(Write("one.jsonl", "{\"text\": \"abcdefg\"}\n"), &tok_, 259);
  ASSERT_TRUE(single.ok());
  EXPECT_TRUE(single->joined.empty());
  EXPECT_EQ(EvalWindows(*single, 4)->ids, single->documents[0]);
}

// The draws are std::mt19937_64 outputs taken modulo the range, so they are the same on every
// platform (the C++ standard fixes the engine: its 10000th output from the default seed is
// 9981545732273789042).
TEST_F(TextDataTest, CalibrationFromOneStreamFollowsTheSeededDraws) {
  std::mt19937_64 standard;
  standard.discard(9999);
  ASSERT_EQ(standard(), 9981545732273789042ull);

  // 200 distinct bytes → stream of 201 distinct tokens, so a window's first token is its offset.
  std::string text;
  for (int i = 0; i < 200; ++i) text += static_cast<char>(i + 40);
  auto c = LoadCorpus(Write("long.txt", text), &tok_, 259);
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<int32_t>& s = c->documents[0];
  ASSERT_EQ(s.size(), 201u);
  const int64_t n = 16, seqlen = 32;
  for (uint64_t seed : {0ull, 7ull, 12345ull}) {
    auto w = SampleCalibration(*c, n, seqlen, seed);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_EQ(w->windows, n);
    ASSERT_EQ(w->ids.size(), static_cast<size_t>(n * seqlen));
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t off = rng() % (s.size() - seqlen);  // offsets 0 .. 201 - 32 - 1
      EXPECT_TRUE(std::equal(w->row(i), w->row(i) + seqlen, s.begin() + off))
          << "seed " << seed << " window " << i << " expected at offset " << off;
    }
  }
  // Determinism, and different seeds give different windows.
  auto a = SampleCalibration(*c, n, seqlen, 7);
  auto b = SampleCalibration(*c, n, seqlen, 7);
  auto d = SampleCalibration(*c, n, seqlen, 8);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  EXPECT_EQ(a->ids, b->ids);
  EXPECT_NE(a->ids, d->ids);
  // T = 200: a 201-token stream leaves offset 0 only.
  auto tight = SampleCalibration(*c, 3, 200, 99);
  ASSERT_TRUE(tight.ok());
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_TRUE(std::equal(tight->row(i), tight->row(i) + 200, s.begin()));
}

TEST_F(TextDataTest, CalibrationFromDocumentsRedrawsShortOnes) {
  // Four documents of 3, 11, 6 and 21 tokens (with BOS), all letters distinct across them.
  const std::string path = Write("docs.jsonl",
                                 "{\"text\": \"ab\"}\n"
                                 "{\"text\": \"cdefghijkl\"}\n"
                                 "{\"text\": \"mnopq\"}\n"
                                 "{\"text\": \"rstuvwxyzABCDEFGHIJK\"}\n");
  auto c = LoadCorpus(path, &tok_, 259);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->documents.size(), 4u);
  const int64_t n = 24, seqlen = 8;  // documents 0 and 2 are too short
  for (uint64_t seed : {0ull, 1ull, 2024ull}) {
    auto w = SampleCalibration(*c, n, seqlen, seed);
    ASSERT_TRUE(w.ok()) << w.status();
    std::mt19937_64 rng(seed);
    std::vector<int> used(4, 0);
    for (int64_t i = 0; i < n; ++i) {
      size_t doc;
      do {
        doc = rng() % 4;
      } while (c->documents[doc].size() <= static_cast<size_t>(seqlen));
      const uint64_t off = rng() % (c->documents[doc].size() - seqlen);
      ++used[doc];
      EXPECT_TRUE(std::equal(w->row(i), w->row(i) + seqlen, c->documents[doc].begin() + off))
          << "seed " << seed << " window " << i << ": expected document " << doc << " offset "
          << off;
    }
    EXPECT_EQ(used[0] + used[2], 0);
    EXPECT_GT(used[1], 0);
    EXPECT_GT(used[3], 0);
  }
  // Only the 21-token document is longer than 12 tokens → every window comes from it; at
  // T = 20 its one offset is 0, so every window starts with its BOS.
  auto w = SampleCalibration(*c, 5, 20, 3);
  ASSERT_TRUE(w.ok());
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_TRUE(std::equal(w->row(i), w->row(i) + 20, c->documents[3].begin()));
  }
}

TEST_F(TextDataTest, PreTokenizedWindowsAndStreams) {
  const std::vector<int64_t> win = {1, 5, 6, 7, 1, 8, 9, 10, 1, 11, 12, 13};  // [3, 4] int64
  const std::vector<int32_t> stream = {1, 4, 5, 6, 7, 8, 9};                  // [7] int32
  const std::string p2 = WriteIds("win.safetensors", DType::kI64, {3, 4}, win);
  const std::string p1 = WriteIds("stream.safetensors", DType::kI32, {7}, stream);

  auto c2 = LoadCorpus(p2, nullptr, 32);  // no tokenizer needed
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->fixed.windows, 3);
  EXPECT_EQ(c2->num_tokens(), 12);
  auto cal = SampleCalibration(*c2, 2, 4, 123);  // the first n rows, whatever the seed
  ASSERT_TRUE(cal.ok()) << cal.status();
  EXPECT_THAT(cal->ids, ElementsAre(1, 5, 6, 7, 1, 8, 9, 10));
  auto ev = EvalWindows(*c2, 4, /*max_windows=*/2);
  ASSERT_TRUE(ev.ok());
  EXPECT_THAT(ev->ids, ElementsAre(1, 5, 6, 7, 1, 8, 9, 10));
  EXPECT_EQ(EvalWindows(*c2, 4)->windows, 3);
  EXPECT_THAT(Message(SampleCalibration(*c2, 4, 4, 0).status()), HasSubstr("win.safetensors"));
  EXPECT_THAT(Message(EvalWindows(*c2, 3).status()), HasSubstr("have 4 tokens, not 3"));

  auto c1 = LoadCorpus(p1, nullptr, 32);
  ASSERT_TRUE(c1.ok()) << c1.status();
  ASSERT_EQ(c1->documents.size(), 1u);
  EXPECT_THAT(c1->documents[0], ElementsAre(1, 4, 5, 6, 7, 8, 9));  // as given, no BOS added
  auto w = EvalWindows(*c1, 3);
  ASSERT_TRUE(w.ok());
  EXPECT_THAT(w->ids, ElementsAre(1, 4, 5, 6, 7, 8));
}

TEST_F(TextDataTest, LoadErrorsNameTheFile) {
  const auto expect_invalid = [&](const absl::StatusOr<TokenizedCorpus>& r, const std::string& name,
                                  const std::string& what) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << name << ": " << r.status();
    EXPECT_THAT(Message(r.status()), HasSubstr(name));
    EXPECT_THAT(Message(r.status()), HasSubstr(what));
  };
  expect_invalid(LoadCorpus(Write("empty.txt", ""), &tok_, 259), "empty.txt", "empty");
  expect_invalid(LoadCorpus(Write("empty.jsonl", ""), &tok_, 259), "empty.jsonl", "empty");
  expect_invalid(LoadCorpus(Write("empty.safetensors", ""), nullptr, 259), "empty.safetensors",
                 "empty");
  expect_invalid(LoadCorpus(Write("blank.jsonl", "\n \n"), &tok_, 259), "blank.jsonl",
                 "no documents");
  expect_invalid(
      LoadCorpus(Write("notext.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"x\"}\n"), &tok_, 259),
      "notext.jsonl:2", "\"text\"");
  expect_invalid(LoadCorpus(Write("number.jsonl", "{\"text\": 5}\n"), &tok_, 259), "number.jsonl:1",
                 "string \"text\"");
  expect_invalid(
      LoadCorpus(Write("broken.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \n"), &tok_, 259),
      "broken.jsonl:3", "not a JSON object");
  expect_invalid(LoadCorpus(Write("array.jsonl", "[\"text\"]\n"), &tok_, 259), "array.jsonl:1",
                 "not a JSON object");
  // 'a' + 3 = 100 is outside a 50-token vocabulary.
  expect_invalid(LoadCorpus(Write("vocab.txt", "abc"), &tok_, 50), "vocab.txt",
                 "token id 100 at position 1");
  expect_invalid(
      LoadCorpus(Write("vocab.jsonl", "{\"text\": \"\"}\n{\"text\": \"abc\"}\n"), &tok_, 50),
      "vocab.jsonl", "outside the vocabulary");
  expect_invalid(LoadCorpus(Write("needs_tok.txt", "abc"), nullptr, 259), "needs_tok.txt",
                 "tokenizer");
  expect_invalid(
      LoadCorpus(WriteIds("big.safetensors", DType::kI64, {3}, std::vector<int64_t>{1, 2, 100}),
                 nullptr, 50),
      "big.safetensors", "token id 100 at position 2");
  expect_invalid(
      LoadCorpus(WriteIds("neg.safetensors", DType::kI32, {2}, std::vector<int32_t>{1, -1}),
                 nullptr, 50),
      "neg.safetensors", "token id -1");
  expect_invalid(
      LoadCorpus(WriteIds("float.safetensors", DType::kF32, {2}, std::vector<float>{1, 2}), nullptr,
                 50),
      "float.safetensors", "int32 or int64");
  expect_invalid(
      LoadCorpus(WriteIds("cube.safetensors", DType::kI32, {1, 1, 2}, std::vector<int32_t>{1, 2}),
                 nullptr, 50),
      "cube.safetensors", "[1, 1, 2]");
  {
    const std::vector<int32_t> ids = {1, 2};
    const std::string path = dir_ + "/other.safetensors";
    ASSERT_TRUE(
        SafetensorsWriter::Write(path, {{"tokens", TensorView{DType::kI32, {2}, ids.data(), 8}}})
            .ok());
    expect_invalid(LoadCorpus(path, nullptr, 50), "other.safetensors", "input_ids");
  }
  const auto missing = LoadCorpus(dir_ + "/missing.txt", &tok_, 259);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), HasSubstr("missing.txt"));
}

TEST_F(TextDataTest, WindowErrorsNameTheCorpus) {
  auto c = LoadCorpus(Write("short.txt", "abcdefghi"), &tok_, 259);  // 10 tokens
  ASSERT_TRUE(c.ok());
  const auto expect_invalid = [&](const absl::Status& s, const std::string& what) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(Message(s), HasSubstr("short.txt"));
    EXPECT_THAT(Message(s), HasSubstr(what));
  };
  expect_invalid(EvalWindows(*c, 11).status(), "10 tokens, fewer than one window of 11");
  expect_invalid(EvalWindows(*c, 0).status(), "seqlen");
  expect_invalid(EvalWindows(*c, -4).status(), "seqlen");
  // Calibration needs more than T tokens (offsets are drawn in [0, N - T)).
  expect_invalid(SampleCalibration(*c, 2, 10, 0).status(), "longer than seqlen 10");
  EXPECT_TRUE(SampleCalibration(*c, 2, 9, 0).ok());
  expect_invalid(SampleCalibration(*c, 0, 4, 0).status(), "samples");
  expect_invalid(SampleCalibration(*c, -1, 4, 0).status(), "samples");
  expect_invalid(SampleCalibration(*c, 2, 0, 0).status(), "seqlen");
}

}  // namespace
}  // namespace prunerd
