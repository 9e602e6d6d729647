// File: text_data.cc
#include "core/data/text_data.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/io/mmap_file.h"
#include "core/io/safetensors.h"

namespace prunerd {
namespace {

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         std::string_view(s).substr(s.size() - suffix.size()) == suffix;
}

// "corpus <file>: " for messages about an already loaded corpus.
std::string Named(const TokenizedCorpus& corpus) {
  return corpus.source.empty() ? std::string("corpus: ")
                               : absl::StrCat("corpus ", corpus.source, ": ");
}

absl::Status CheckIds(const std::vector<int32_t>& ids, int32_t vocab_size,
                      const std::string& where) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": token id ", ids[i], " at position ",
                                                     i, " is outside the vocabulary [0, ",
                                                     vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenizedCorpus> LoadPretokenized(const std::string& path, int32_t vocab_size) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) == 0 &&
      !ec) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the file is empty"));
  }
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  if (!file->Contains("input_ids")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a pre-tokenized file needs a tensor named \"input_ids\""));
  }
  ASSIGN_OR_RETURN(TensorView view, file->Get("input_ids"));
  if (view.dtype != DType::kI64 && view.dtype != DType::kI32) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids must be int32 or int64, not ",
                                                   std::string(DTypeName(view.dtype))));
  }
  if (view.shape.empty() || view.shape.size() > 2 || view.numel() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": input_ids must be a non-empty [n, T] or [N], not ", ShapeString(view.shape)));
  }
  const int64_t numel = view.numel();
  std::vector<int32_t> ids(numel);
  for (int64_t i = 0; i < numel; ++i) {
    const int64_t v = view.dtype == DType::kI64 ? static_cast<const int64_t*>(view.data)[i]
                                                : static_cast<const int32_t*>(view.data)[i];
    if (v < 0 || v >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": input_ids holds token id ", v, " at position ", i,
                       ", outside the vocabulary [0, ", vocab_size, ")"));
    }
    ids[i] = static_cast<int32_t>(v);
  }
  TokenizedCorpus c;
  c.source = path;
  if (view.shape.size() == 2) {
    c.fixed =
        TokenWindows{.windows = view.shape[0], .seqlen = view.shape[1], .ids = std::move(ids)};
  } else {
    c.documents.push_back(std::move(ids));
  }
  return c;
}

// The "text" field of every non-blank line.
absl::StatusOr<std::vector<std::string>> ParseJsonLines(const std::string& path,
                                                        const std::string& contents) {
  std::vector<std::string> texts;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < contents.size()) {
    size_t end = contents.find('\n', pos);
    if (end == std::string::npos) end = contents.size();
    const std::string_view line = std::string_view(contents).substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": not a JSON object"));
    }
    const auto it = j.find("text");
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": no string \"text\" field"));
    }
    texts.push_back(it->get<std::string>());
  }
  if (texts.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no documents (only blank lines)"));
  }
  return texts;
}

}  // namespace

int64_t TokenizedCorpus::num_tokens() const {
  int64_t n = static_cast<int64_t>(fixed.ids.size());
  for (const auto& d : documents) n += static_cast<int64_t>(d.size());
  return n;
}

absl::StatusOr<TokenizedCorpus> LoadCorpus(const std::string& path, const Tokenizer* tokenizer,
                                           int32_t vocab_size) {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": vocab_size must be positive, got ", vocab_size));
  }
  if (EndsWith(path, ".safetensors")) return LoadPretokenized(path, vocab_size);
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": the file is empty"));
  if (tokenizer == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": a tokenizer is needed for text input"));
  }
  TokenizedCorpus c;
  c.source = path;
  if (EndsWith(path, ".jsonl")) {
    ASSIGN_OR_RETURN(std::vector<std::string> texts, ParseJsonLines(path, text));
    text.clear();
    text.shrink_to_fit();
    c.documents.reserve(texts.size());
    for (const std::string& doc : texts) {
      c.documents.push_back(tokenizer->Encode(doc, /*add_bos=*/true));
    }
    if (texts.size() > 1) {
      std::string all;
      for (size_t i = 0; i < texts.size(); ++i) {
        if (i > 0) all += "\n\n";
        all += texts[i];
      }
      c.joined = tokenizer->Encode(all, /*add_bos=*/true);
      RETURN_IF_ERROR(CheckIds(c.joined, vocab_size, path));
    }
  } else {
    c.documents.push_back(tokenizer->Encode(text, /*add_bos=*/true));
  }
  for (size_t i = 0; i < c.documents.size(); ++i) {
    RETURN_IF_ERROR(
        CheckIds(c.documents[i], vocab_size,
                 c.documents.size() > 1 ? absl::StrCat(path, " document ", i + 1) : path));
  }
  return c;
}

absl::StatusOr<TokenWindows> EvalWindows(const TokenizedCorpus& corpus, int64_t seqlen,
                                         int64_t max_windows) {
  if (seqlen < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(corpus), "seqlen must be >= 2, got ", seqlen));
  }
  TokenWindows w{.seqlen = seqlen};
  if (!corpus.fixed.ids.empty()) {
    if (corpus.fixed.seqlen != seqlen) {
      return absl::InvalidArgumentError(absl::StrCat(Named(corpus), "pre-tokenized windows have ",
                                                     corpus.fixed.seqlen, " tokens, not ", seqlen));
    }
    w = corpus.fixed;
  } else {
    const std::vector<int32_t>* stream = nullptr;
    if (!corpus.joined.empty()) {
      stream = &corpus.joined;
    } else if (corpus.documents.size() == 1) {
      stream = &corpus.documents[0];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(Named(corpus), corpus.documents.size(),
                                                     " documents but no joined evaluation stream"));
    }
    const int64_t n = static_cast<int64_t>(stream->size()) / seqlen;
    if (n == 0) {
      return absl::InvalidArgumentError(absl::StrCat(Named(corpus), stream->size(),
                                                     " tokens, fewer than one window of ", seqlen));
    }
    w.windows = n;
    w.ids.assign(stream->begin(), stream->begin() + n * seqlen);  // the remainder is dropped
  }
  if (max_windows > 0 && w.windows > max_windows) {
    w.windows = max_windows;
    w.ids.resize(max_windows * seqlen);
  }
  return w;
}

absl::StatusOr<TokenWindows> SampleCalibration(const TokenizedCorpus& corpus, int64_t n,
                                               int64_t seqlen, uint64_t seed) {
  if (n < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(corpus), "the number of calibration samples must be >= 1, got ", n));
  }
  if (seqlen < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(corpus), "seqlen must be >= 2, got ", seqlen));
  }
  TokenWindows w{.windows = n, .seqlen = seqlen};
  if (!corpus.fixed.ids.empty()) {
    if (corpus.fixed.seqlen != seqlen || corpus.fixed.windows < n) {
      return absl::InvalidArgumentError(absl::StrCat(
          Named(corpus), "pre-tokenized calibration is [", corpus.fixed.windows, ", ",
          corpus.fixed.seqlen, "] but ", n, " windows of ", seqlen, " tokens were asked for"));
    }
    w.ids.assign(corpus.fixed.ids.begin(), corpus.fixed.ids.begin() + n * seqlen);
    return w;
  }
  size_t longest = 0;
  for (const auto& d : corpus.documents) longest = std::max(longest, d.size());
  if (static_cast<int64_t>(longest) <= seqlen) {
    return absl::InvalidArgumentError(absl::StrCat(
        Named(corpus), "no document is longer than seqlen ", seqlen, " tokens (the longest has ",
        longest, corpus.documents.size() == 1 ? ": fewer tokens than one window plus one)" : ")"));
  }
  std::mt19937_64 rng(seed);
  w.ids.reserve(n * seqlen);
  for (int64_t s = 0; s < n; ++s) {
    // As the reference: draw documents until one is longer than seqlen, then an offset.
    const std::vector<int32_t>* doc = &corpus.documents[0];
    if (corpus.documents.size() > 1) {
      do {
        doc = &corpus.documents[rng() % corpus.documents.size()];
      } while (static_cast<int64_t>(doc->size()) <= seqlen);
    }
    const uint64_t range = doc->size() - seqlen;  // offsets 0 .. size - seqlen - 1
    const uint64_t off = rng() % range;
    w.ids.insert(w.ids.end(), doc->begin() + off, doc->begin() + off + seqlen);
  }
  return w;
}

}  // namespace prunerd
