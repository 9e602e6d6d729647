#include "core/engine/model_loader.h"

#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/torch_util.h"

namespace prunerd {

absl::StatusOr<LoadedModel> OpenModel(const std::string& model_path,
                                      const std::string& tokenizer_path) {
  LoadedModel out;
  ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Open(model_path));
  out.checkpoint = std::move(ckpt);
  out.tokenizer_path = tokenizer_path.empty() ? out.checkpoint->tokenizer_path() : tokenizer_path;
  if (out.tokenizer_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer: no tokenizer.model found for model ",
                                                   model_path, "; pass a tokenizer path"));
  }
  ASSIGN_OR_RETURN(out.tokenizer, Tokenizer::Load(out.tokenizer_path));
  if (out.tokenizer->vocab_size() > out.checkpoint->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer: ", out.tokenizer_path, " has ", out.tokenizer->vocab_size(),
        " pieces but the model's vocabulary has ", out.checkpoint->config().vocab_size));
  }
  absl::Status s = TorchCall("load model", [&] {
    auto m = LoadLlama(out.checkpoint);
    if (m.ok())
      out.model = std::move(*m);
    else
      throw std::runtime_error(std::string(m.status().message()));
  });
  RETURN_IF_ERROR(s);
  return out;
}

}  // namespace prunerd
