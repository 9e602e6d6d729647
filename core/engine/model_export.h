// File: model_export.h  (internal to core/: includes ATen)
//
// Writes a LlamaModel (pruned or sliced, layers on the host) as a Hugging Face LLaMA directory
// through HfModelWriter: config.json derived from the source model's (architecture fields from
// model.config, so TransAct's smaller dims are recorded), safetensors shards, and the
// tokenizer files of the source model (a llama2.c model's tok*.model is written as
// tokenizer.model so the result loads like any Hugging Face directory).
//
// Thread-safety: pure function.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "core/engine/llama_model.h"

namespace prunerd {

absl::Status WriteHfModel(const LlamaModel& model, const std::string& tokenizer_path,
                          const std::string& dir);

}  // namespace prunerd
