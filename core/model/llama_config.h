// File: llama_config.h
//
// The architecture of a LLaMA-family decoder (LLaMA 1/2/3, TinyLlama, llama2.c models): what
// config.json says, normalised. Parsing accepts both transformers-4 (top-level "rope_theta",
// "rope_scaling") and transformers-5 ("rope_parameters": {"rope_theta", "rope_type", ...})
// spellings, an explicit "head_dim" (else hidden_size / num_attention_heads), GQA through
// "num_key_value_heads" (else = num_attention_heads) and "tie_word_embeddings".
// Validate() rejects inconsistent sizes with a message naming the fields.
//
// Tensor names follow Hugging Face's LlamaForCausalLM ("model.layers.3.mlp.up_proj.weight").
//
// Thread-safety: plain value.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/tensor_view.h"

namespace prunerd {

struct RopeScaling {
  enum class Type { kNone, kLlama3 };
  Type type = Type::kNone;
  // LLaMA-3.1 "llama3" scaling.
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct LlamaConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  DType torch_dtype = DType::kF32;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t num_queries_per_kv() const { return num_attention_heads / num_key_value_heads; }
  // Parameters of the model as stored (the tied lm_head counted once).
  int64_t NumParameters() const;
  // Values held in the KV cache per token, over all layers: 2 * layers * kv_dim.
  int64_t KvCacheValuesPerToken() const { return 2 * num_hidden_layers * kv_dim(); }

  // InvalidArgument naming the offending fields: non-positive sizes, heads not dividing into
  // KV groups, hidden_size != heads * head_dim when head_dim was derived, etc.
  absl::Status Validate() const;
};

// Parses config.json text. Unsupported features (attention/mlp bias, a rope_scaling type other
// than "llama3"/"default", a non-SiLU activation) are InvalidArgument / Unimplemented with the
// field named. The result is validated.
absl::StatusOr<LlamaConfig> ParseHfConfig(std::string_view json_text);

// config.json for `config`. When `base_json` (the source model's config.json text) is given,
// its other fields (architectures, token ids, anything unknown to us) are kept and only the
// architecture fields are overwritten; the output always carries an explicit head_dim.
std::string ToHfConfigJson(const LlamaConfig& config, std::string_view base_json = {});

// The seven pruneable linear layers of a decoder layer, in execution order.
enum class Proj : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr std::array<Proj, 7> kAllProjs = {Proj::kQ,    Proj::kK,  Proj::kV,   Proj::kO,
                                                  Proj::kGate, Proj::kUp, Proj::kDown};
std::string_view ProjName(Proj p);  // "q_proj", ..., "down_proj"
// "self_attn.q_proj" / "mlp.down_proj".
std::string_view ProjModulePath(Proj p);
// "model.layers.{layer}.self_attn.q_proj.weight".
std::string ProjWeightName(int64_t layer, Proj p);
// [out_features, in_features] of a projection under `config`.
std::array<int64_t, 2> ProjShape(const LlamaConfig& config, Proj p);

// Other tensors.
inline constexpr std::string_view kEmbedName = "model.embed_tokens.weight";
inline constexpr std::string_view kFinalNormName = "model.norm.weight";
inline constexpr std::string_view kLmHeadName = "lm_head.weight";
std::string InputNormName(int64_t layer);     // model.layers.{i}.input_layernorm.weight
std::string PostAttnNormName(int64_t layer);  // model.layers.{i}.post_attention_layernorm.weight

}  // namespace prunerd
