#include "core/data/text_data.h"

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/io/mmap_file.h"
#include "core/io/safetensors.h"

namespace prunerd {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

absl::Status CheckIds(const std::vector<int32_t>& ids, int32_t vocab_size, const std::string& path) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": token ", ids[i], " at position ", i,
                                                     " is outside the vocabulary [0, ",
                                                     vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenizedCorpus> LoadPretokenized(const std::string& path, int32_t vocab_size) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  auto view = file->Get("input_ids");
  if (!view.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a pre-tokenized file needs a tensor named \"input_ids\""));
  }
  if (view->dtype != DType::kI64 && view->dtype != DType::kI32) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": input_ids must be int32 or int64, got ", std::string(DTypeName(view->dtype))));
  }
  if (view->shape.empty() || view->shape.size() > 2 || view->numel() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids must be [n, T] or [N], got ",
                                                   ShapeString(view->shape)));
  }
  std::vector<int32_t> ids(view->numel());
  for (int64_t i = 0; i < view->numel(); ++i) {
    const int64_t v = view->dtype == DType::kI64 ? static_cast<const int64_t*>(view->data)[i]
                                                 : static_cast<const int32_t*>(view->data)[i];
    if (v < 0 || v >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": token ", v, " at position ", i,
                                                     " is outside the vocabulary [0, ",
                                                     vocab_size, ")"));
    }
    ids[i] = static_cast<int32_t>(v);
  }
  TokenizedCorpus c;
  if (view->shape.size() == 2) {
    c.fixed = TokenWindows{.windows = view->shape[0], .seqlen = view->shape[1], .ids = std::move(ids)};
  } else {
    c.documents.push_back(std::move(ids));
  }
  return c;
}

}  // namespace

int64_t TokenizedCorpus::num_tokens() const {
  int64_t n = static_cast<int64_t>(fixed.ids.size());
  for (const auto& d : documents) n += static_cast<int64_t>(d.size());
  return n;
}

absl::StatusOr<TokenizedCorpus> LoadCorpus(const std::string& path, const Tokenizer* tokenizer,
                                           int32_t vocab_size) {
  if (EndsWith(path, ".safetensors")) return LoadPretokenized(path, vocab_size);
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": the file is empty"));
  if (tokenizer == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": a tokenizer is needed for text input"));
  }
  TokenizedCorpus c;
  if (EndsWith(path, ".jsonl")) {
    size_t line_no = 0, pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ":", line_no, ": expected a JSON object with a string \"text\" field"));
      }
      const std::string doc = j["text"].get<std::string>();
      c.documents.push_back(tokenizer->Encode(doc, /*add_bos=*/true));
    }
    if (c.documents.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": no documents"));
    }
  } else {
    c.documents.push_back(tokenizer->Encode(text, /*add_bos=*/true));
  }
  for (const auto& d : c.documents) RETURN_IF_ERROR(CheckIds(d, vocab_size, path));
  return c;
}

absl::StatusOr<TokenWindows> EvalWindows(const TokenizedCorpus& corpus, int64_t seqlen,
                                         int64_t max_windows) {
  if (seqlen < 2) return absl::InvalidArgumentError(absl::StrCat("seqlen: must be >= 2, got ", seqlen));
  TokenWindows w{.seqlen = seqlen};
  if (!corpus.fixed.ids.empty()) {
    if (corpus.fixed.seqlen != seqlen) {
      return absl::InvalidArgumentError(absl::StrCat("pre-tokenized windows have ",
                                                     corpus.fixed.seqlen, " tokens, not ", seqlen));
    }
    w = corpus.fixed;
  } else {
    // The documents of a jsonl corpus are joined with "\n\n" by the reference; here each already
    // carries its BOS, so the stream is their concatenation.
    std::vector<int32_t> stream;
    for (const auto& d : corpus.documents) stream.insert(stream.end(), d.begin(), d.end());
    const int64_t n = static_cast<int64_t>(stream.size()) / seqlen;
    if (n == 0) {
      return absl::InvalidArgumentError(absl::StrCat("the corpus has ", stream.size(),
                                                     " tokens, fewer than one window of ", seqlen));
    }
    stream.resize(n * seqlen);
    w.windows = n;
    w.ids = std::move(stream);
  }
  if (max_windows > 0 && w.windows > max_windows) {
    w.windows = max_windows;
    w.ids.resize(max_windows * seqlen);
  }
  return w;
}

absl::StatusOr<TokenWindows> SampleCalibration(const TokenizedCorpus& corpus, int64_t n,
                                               int64_t seqlen, uint64_t seed) {
  if (n <= 0) return absl::InvalidArgumentError(absl::StrCat("num_samples: must be > 0, got ", n));
  if (seqlen < 2) return absl::InvalidArgumentError(absl::StrCat("seqlen: must be >= 2, got ", seqlen));
  TokenWindows w{.windows = n, .seqlen = seqlen};
  if (!corpus.fixed.ids.empty()) {
    if (corpus.fixed.seqlen != seqlen || corpus.fixed.windows < n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pre-tokenized calibration is [", corpus.fixed.windows, ", ", corpus.fixed.seqlen,
          "] but ", n, " windows of ", seqlen, " tokens were asked for"));
    }
    w.ids.assign(corpus.fixed.ids.begin(), corpus.fixed.ids.begin() + n * seqlen);
    return w;
  }
  std::vector<size_t> long_docs;
  for (size_t i = 0; i < corpus.documents.size(); ++i) {
    if (static_cast<int64_t>(corpus.documents[i].size()) > seqlen) long_docs.push_back(i);
  }
  if (long_docs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no calibration document is longer than seqlen ", seqlen, " tokens (the longest has ",
        corpus.documents.empty() ? 0 : corpus.documents[0].size(), ")"));
  }
  std::mt19937_64 rng(seed);
  w.ids.reserve(n * seqlen);
  for (int64_t s = 0; s < n; ++s) {
    // As the reference: draw documents until one is longer than seqlen, then an offset.
    const std::vector<int32_t>* doc = nullptr;
    if (corpus.documents.size() == 1) {
      doc = &corpus.documents[0];
    } else {
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
