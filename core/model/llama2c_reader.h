// File: llama2c_reader.h
//
// Reads a llama2.c checkpoint (the legacy "version 0" export of karpathy/llama2.c): seven
// little-endian int32 header fields (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; a negative vocab_size means an unshared classifier) followed by fp32
// tensors token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// freq_cis_real, freq_cis_imag and, when unshared, wcls.
//
// The file size must equal exactly what the header implies. Tensors come back under their
// Hugging Face names (w1 -> gate_proj, w2 -> down_proj, w3 -> up_proj, wcls -> lm_head), with
// the q/k rows of every head permuted from llama2.c's interleaved RoPE pairs (2i, 2i+1) to
// Hugging Face's rotate-half pairs (i, i + head_dim/2): new row i = old row 2i and
// new row head_dim/2 + i = old row 2i + 1. The RoPE tables are dropped (recomputed by the
// forward from rope_theta = 10000).
//
//   ASSIGN_OR_RETURN(Llama2cModel m, ReadLlama2cCheckpoint("stories260K.bin"));
//
// Thread-safety: free functions, no shared state.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "core/io/tensor_view.h"
#include "core/model/llama_config.h"

namespace prunerd {

struct Llama2cModel {
  LlamaConfig config;  // eps 1e-5, theta 10000, max positions = seq_len, fp32
  std::map<std::string, HostTensor, std::less<>> tensors;  // Hugging Face names, F32
};

// InvalidArgument naming the file and the header on a malformed file (wrong size, bad
// header); Unimplemented for the newer versioned llama2.c exports.
absl::StatusOr<Llama2cModel> ReadLlama2cCheckpoint(const std::string& path);

// The SentencePiece model beside a llama2.c file: "tokenizer.model" in the same directory,
// else the only "tok*.model" there; "" when there is none (or several candidates).
std::string FindLlama2cTokenizer(const std::string& bin_path);

}  // namespace prunerd
