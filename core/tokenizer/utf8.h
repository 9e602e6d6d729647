// File: utf8.h
//
// The UTF-8 rules the tokenizer needs, as SentencePiece applies them: a character is a
// well-formed UTF-8 sequence (no overlong forms, no surrogates, nothing above U+10FFFF); every
// byte that does not start one is a malformed byte of its own and becomes U+FFFD.
//
//   size_t n = Utf8CharLength(text, pos);  // 1..4, or 0 when text[pos] is malformed
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace prunerd {

// U+FFFD REPLACEMENT CHARACTER in UTF-8.
inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";

// The length of the well-formed UTF-8 character that starts at `text[pos]`, or 0 when the byte
// there does not start one (a stray continuation byte, a truncated or overlong sequence, a
// surrogate, a code point above U+10FFFF). `pos` must be < text.size().
size_t Utf8CharLength(std::string_view text, size_t pos);

// `text` with every malformed byte replaced by U+FFFD (one replacement per byte).
std::string ReplaceMalformedUtf8(std::string_view text);

}  // namespace prunerd
