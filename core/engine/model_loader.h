// File: model_loader.h  (internal to core/: includes ATen)
//
// Opens what an engine call needs from a model path: the checkpoint (validated), its
// tokenizer (the given path, or the one that belongs to the model), and the LlamaModel aliasing
// the checkpoint's bytes. Errors name the path.
//
// Thread-safety: pure function.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/engine/llama_model.h"
#include "core/tokenizer/tokenizer.h"

namespace prunerd {

struct LoadedModel {
  std::shared_ptr<const Checkpoint> checkpoint;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string tokenizer_path;
  LlamaModel model;
};

absl::StatusOr<LoadedModel> OpenModel(const std::string& model_path,
                                      const std::string& tokenizer_path);

}  // namespace prunerd
