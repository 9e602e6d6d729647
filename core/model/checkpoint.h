// File: checkpoint.h
//
// A LLaMA checkpoint opened for reading, whatever its on-disk format:
//  - a Hugging Face directory: config.json plus model.safetensors, or shards listed in
//    model.safetensors.index.json ("weight_map"); F32, F16 or BF16 tensors, mmapped;
//  - a llama2.c .bin file (legacy "version 0": 7 int32 header fields then fp32 tensors). Its
//    q/k rows are permuted at load time from llama2.c's interleaved RoPE pairs ((0,1),(2,3)...)
//    to Hugging Face's rotate-half layout (i, i + head_dim/2), so one forward serves both; the
//    converted tensors are held in memory (llama2.c files are small).
//
// Open() validates everything before returning: the config, that every tensor the
// architecture needs is present with the expected shape and a floating dtype, that shards
// exist. Errors name the file, the tensor and expected-vs-found.
//
//   ASSIGN_OR_RETURN(auto ckpt, Checkpoint::Open("/models/prose16M"));
//   const LlamaConfig& cfg = ckpt->config();
//   ASSIGN_OR_RETURN(TensorView w, ckpt->Get(ProjWeightName(0, Proj::kQ)));
//
// Thread-safety: immutable after Open; safe to share across threads.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_view.h"
#include "core/model/llama_config.h"

namespace prunerd {

enum class CheckpointFormat { kHuggingFace, kLlama2c };

class Checkpoint {
 public:
  // `path`: a Hugging Face model directory, or a llama2.c .bin file.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& path);

  const LlamaConfig& config() const { return config_; }
  CheckpointFormat format() const { return format_; }
  const std::string& path() const { return path_; }
  // The original config.json text (empty for llama2.c), for writing derived models.
  const std::string& config_json() const { return config_json_; }

  // A tensor by Hugging Face name. With tied embeddings "lm_head.weight" resolves to the
  // embedding. NotFound naming the tensor otherwise.
  absl::StatusOr<TensorView> Get(std::string_view name) const;
  // Every tensor name the checkpoint stores, sorted.
  std::vector<std::string> TensorNames() const;
  // Total bytes of tensor data.
  int64_t TotalBytes() const;

  // The SentencePiece tokenizer that belongs to this model, or "" when none is found:
  // <dir>/tokenizer.model for Hugging Face directories; for a llama2.c file, tokenizer.model
  // or a single tok*.model beside it.
  const std::string& tokenizer_path() const { return tokenizer_path_; }
  // Files to copy next to a derived model (tokenizer.model, tokenizer_config.json,
  // tokenizer.json, special_tokens_map.json, generation_config.json when present).
  const std::vector<std::string>& auxiliary_files() const { return auxiliary_files_; }
  // The files the config and weights were read from: config.json, the shard index and the
  // shards in order (Hugging Face), or the .bin (llama2.c).
  const std::vector<std::string>& source_files() const { return source_files_; }

 private:
  Checkpoint() = default;
  friend class CheckpointLoader;

  std::string path_;
  CheckpointFormat format_ = CheckpointFormat::kHuggingFace;
  LlamaConfig config_;
  std::string config_json_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, TensorView, std::less<>> tensors_;  // views into shards_ or owned_
  std::vector<HostTensor> owned_;
  std::string tokenizer_path_;
  std::vector<std::string> auxiliary_files_;
  std::vector<std::string> source_files_;
};

// Checks that `ckpt`-like tensor maps hold every tensor `config` requires, with the right
// shapes and floating dtypes. Exposed for the writer's self-check and for tests.
absl::Status ValidateTensors(const LlamaConfig& config,
                             const std::map<std::string, TensorView, std::less<>>& tensors,
                             std::string_view where);

}  // namespace prunerd
