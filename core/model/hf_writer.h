// File: hf_writer.h
//
// Writes a model as a Hugging Face LLaMA directory: config.json, safetensors shards
// (model-0000i-of-0000N.safetensors + model.safetensors.index.json, or a single
// model.safetensors when everything fits in one shard), and auxiliary files (tokenizer) copied
// over. Tensors are added one at a time (a layer at a time is the intended use) and buffered
// only up to one shard, so writing a 70B model needs about one shard of host memory.
//
// Auxiliary files keep their base name, except that a SentencePiece "*.model" file (llama2.c's
// tok512.model) is written as "tokenizer.model", the name transformers' LlamaTokenizer expects.
// Shards carry __metadata__ {"format": options.metadata_format}; the index's metadata holds
// total_size (tensor bytes) and total_parameters.
//
// Durability: everything is written into "<dir>.partial-<random>" and renamed to `dir` by
// Finish() after every file is fsynced; an abandoned writer (destructor without Finish) removes
// its temp directory. Finish() fails if `dir` exists and is not empty.
//
//   HfModelWriter w(out_dir, config, base_config_json, {"/m/tokenizer.model"});
//   for (...) RETURN_IF_ERROR(w.Add(name, view));
//   RETURN_IF_ERROR(w.Finish());
//
// Thread-safety: not thread-safe; use from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/io/tensor_view.h"
#include "core/model/llama_config.h"

namespace prunerd {

struct HfWriterOptions {
  int64_t max_shard_bytes = int64_t{2} << 30;  // 2 GiB, like transformers' default 5GB-ish
  std::string metadata_format = "pt";          // safetensors __metadata__ {"format": ...}
};

class HfModelWriter {
 public:
  HfModelWriter(std::string dir, LlamaConfig config, std::string base_config_json,
                std::vector<std::string> auxiliary_files, HfWriterOptions options = {});
  ~HfModelWriter();
  HfModelWriter(const HfModelWriter&) = delete;
  HfModelWriter& operator=(const HfModelWriter&) = delete;

  // Copies the tensor's bytes into the current shard buffer (flushing a full shard to disk).
  absl::Status Add(const std::string& name, const TensorView& tensor);
  // Flushes, writes config.json and the index, copies auxiliary files, verifies that the
  // written tensor set satisfies ValidateTensors(config), and renames into place.
  absl::Status Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prunerd
