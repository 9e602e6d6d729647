// File: tokenizer.cc
//
// Tokenizer::Load: reads the file and picks the loader from its contents.
#include "core/tokenizer/tokenizer.h"

#include <sys/stat.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/llama2c_tokenizer_loader.h"
#include "core/tokenizer/sentencepiece_model_loader.h"

namespace prunerd {
namespace {

absl::StatusOr<std::string> ReadTokenizerFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    const std::string what = absl::StrCat("tokenizer ", path, ": ", std::strerror(err));
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(what);
    if (err == EACCES) return absl::PermissionDeniedError(what);
    return absl::UnavailableError(what);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer ", path, ": not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::PermissionDeniedError(
        absl::StrCat("tokenizer ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("tokenizer ", path, ": read failed"));
  return contents.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadTokenizerFile(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer ", path, ": empty file"));
  }
  absl::StatusOr<BpeModel> model = LooksLikeLlama2cTokenizer(*bytes)
                                       ? ParseLlama2cTokenizer(*bytes, path)
                                       : ParseSentencePieceModel(*bytes, path);
  if (!model.ok()) return model.status();
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tok = BpeTokenizer::Create(*std::move(model));
  if (!tok.ok()) {
    return absl::Status(tok.status().code(),
                        absl::StrCat(path, ": ", std::string(tok.status().message())));
  }
  return std::unique_ptr<Tokenizer>(std::move(*tok));
}

}  // namespace prunerd
