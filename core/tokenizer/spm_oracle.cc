// File: spm_oracle.cc
#include "core/tokenizer/spm_oracle.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace prunerd::testing {
namespace {

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("popen failed: ", command));
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  if (status != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("oracle command failed (status ", status, "): ", command,
                     "\n(install the oracles with .ci/install-deps.sh: packages sentencepiece "
                     "and python3-sentencepiece)"));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> ParseIdLines(const std::string& out) {
  std::vector<std::vector<int32_t>> result;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    std::vector<int32_t> ids;
    for (absl::string_view field : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      int32_t id;
      if (!absl::SimpleAtoi(field, &id)) {
        return absl::InternalError(absl::StrCat("oracle printed a non-id \"", field, "\""));
      }
      ids.push_back(id);
    }
    result.push_back(std::move(ids));
  }
  // The output ends with '\n': the last split element is the empty remainder.
  if (!result.empty() && result.back().empty() && !out.empty() && out.back() == '\n') {
    result.pop_back();
  }
  return result;
}

}  // namespace

absl::StatusOr<std::vector<std::vector<int32_t>>> SpmEncodeLines(const std::string& model_path,
                                                                 const std::string& text_path) {
  absl::StatusOr<std::string> out =
      RunCommand(absl::StrCat("spm_encode --model=", ShellQuote(model_path),
                              " --output_format=id < ", ShellQuote(text_path)));
  if (!out.ok()) return out.status();
  return ParseIdLines(*out);
}

absl::StatusOr<std::vector<std::vector<int32_t>>> SpmEncodeWhole(
    const std::string& model_path, const std::vector<std::string>& text_paths) {
  const char* source_dir = std::getenv("PRUNERD_SOURCE_DIR");
  const std::string script =
      source_dir != nullptr && *source_dir != '\0'
          ? absl::StrCat(source_dir, "/core/tokenizer/testdata/spm_encode_whole.py")
          : absl::StrCat(PRUNERD_TOKENIZER_SOURCE_DIR, "/testdata/spm_encode_whole.py");
  std::string command =
      absl::StrCat("/usr/bin/python3 ", ShellQuote(script), " ", ShellQuote(model_path));
  for (const std::string& p : text_paths) absl::StrAppend(&command, " ", ShellQuote(p));
  absl::StatusOr<std::string> out = RunCommand(command);
  if (!out.ok()) return out.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> ids = ParseIdLines(*out);
  if (ids.ok() && ids->size() != text_paths.size()) {
    return absl::InternalError(
        absl::StrCat("oracle printed ", ids->size(), " lines for ", text_paths.size(), " files"));
  }
  return ids;
}

std::string DescribeMismatch(const std::vector<int32_t>& expected,
                             const std::vector<int32_t>& actual, const Tokenizer& tok,
                             const std::string& context) {
  if (expected == actual) return "";
  size_t i = 0;
  while (i < expected.size() && i < actual.size() && expected[i] == actual[i]) ++i;
  const auto show = [&](const std::vector<int32_t>& ids) {
    std::vector<std::string> parts;
    const size_t begin = i >= 3 ? i - 3 : 0;
    for (size_t k = begin; k < ids.size() && k < i + 5; ++k) {
      parts.push_back(
          absl::StrCat(k == i ? "*" : "", ids[k], "(", std::string(tok.Piece(ids[k])), ")"));
    }
    return absl::StrJoin(parts, " ");
  };
  return absl::StrCat(context, ": first mismatch at token ", i, " (expected ", expected.size(),
                      " tokens, got ", actual.size(), ")\n  oracle: ", show(expected),
                      "\n  ours:   ", show(actual));
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFileOrDie(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
}

}  // namespace prunerd::testing
