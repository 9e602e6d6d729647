// UTF-8 well-formedness as SentencePiece applies it (each malformed byte → one U+FFFD; the
// cases were checked against spm_encode, see sentencepiece_variants_test.cc for the oracle run).
#include "core/tokenizer/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace prunerd {
namespace {

TEST(Utf8Test, LengthsOfWellFormedCharacters) {
  EXPECT_EQ(Utf8CharLength("a", 0), 1u);
  EXPECT_EQ(Utf8CharLength(std::string_view("\0", 1), 0), 1u);
  EXPECT_EQ(Utf8CharLength("\xC3\xA9", 0), 2u);          // é
  EXPECT_EQ(Utf8CharLength("\xE2\x96\x81", 0), 3u);      // ▁
  EXPECT_EQ(Utf8CharLength("\xEF\xBF\xBF", 0), 3u);      // U+FFFF
  EXPECT_EQ(Utf8CharLength("\xF0\x9F\x98\x80", 0), 4u);  // U+1F600
  EXPECT_EQ(Utf8CharLength("\xF4\x8F\xBF\xBF", 0), 4u);  // U+10FFFF
  EXPECT_EQ(Utf8CharLength("x\xC3\xA9", 1), 2u);
}

TEST(Utf8Test, MalformedBytes) {
  EXPECT_EQ(Utf8CharLength("\x80", 0), 0u);              // stray continuation
  EXPECT_EQ(Utf8CharLength("\xC3", 0), 0u);              // truncated
  EXPECT_EQ(Utf8CharLength("\xC3(", 0), 0u);             // bad continuation
  EXPECT_EQ(Utf8CharLength("\xC0\x80", 0), 0u);          // overlong NUL
  EXPECT_EQ(Utf8CharLength("\xC1\xBF", 0), 0u);          // overlong
  EXPECT_EQ(Utf8CharLength("\xE0\x80\x80", 0), 0u);      // overlong 3-byte
  EXPECT_EQ(Utf8CharLength("\xED\xA0\x80", 0), 0u);      // surrogate U+D800
  EXPECT_EQ(Utf8CharLength("\xF0\x80\x80\x80", 0), 0u);  // overlong 4-byte
  EXPECT_EQ(Utf8CharLength("\xF4\x90\x80\x80", 0), 0u);  // U+110000
  EXPECT_EQ(Utf8CharLength("\xF5\x80\x80\x80", 0), 0u);
  EXPECT_EQ(Utf8CharLength("\xFF", 0), 0u);
  EXPECT_EQ(Utf8CharLength("\xE2\x82", 0), 0u);  // truncated 3-byte
}

// spm_encode's pieces for these inputs (LLaMA-2 model) show one U+FFFD per malformed byte:
// "\xe2\x82" → "��", "\xed\xa0\x80" → "���", "\xc3(" → "�(".
TEST(Utf8Test, ReplacesEachMalformedByte) {
  const std::string r(kUtf8Replacement);
  EXPECT_EQ(ReplaceMalformedUtf8("a\xFF"
                                 "b"),
            "a" + r + "b");
  EXPECT_EQ(ReplaceMalformedUtf8("\xE2\x82"), r + r);
  EXPECT_EQ(ReplaceMalformedUtf8("\xED\xA0\x80"), r + r + r);
  EXPECT_EQ(ReplaceMalformedUtf8("\xC3("), r + "(");
  EXPECT_EQ(ReplaceMalformedUtf8("\xC3\xA9\xF0\x9F\x98\x80"), "\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(ReplaceMalformedUtf8(""), "");
}

}  // namespace
}  // namespace prunerd
