#include "core/model/llama_config.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "nlohmann/json.hpp"

namespace prunerd {
namespace {

using Json = nlohmann::ordered_json;

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status ConfigError(std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", AbslView(message)));
}

bool Present(const Json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// Reads an integer field; `required` fields must be present. Fails when the value is not an
// integer.
absl::Status ReadInt(const Json& j, const char* key, bool required, int64_t* out) {
  if (!Present(j, key)) {
    if (required) return ConfigError(absl::StrCat("missing required field \"", key, "\""));
    return absl::OkStatus();
  }
  const Json& v = j[key];
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return absl::OkStatus();
  }
  return ConfigError(absl::StrCat("field \"", key, "\" must be an integer, found ", v.dump()));
}

absl::Status ReadDouble(const Json& j, const char* key, double* out) {
  if (!Present(j, key)) return absl::OkStatus();
  const Json& v = j[key];
  if (!v.is_number()) {
    return ConfigError(absl::StrCat("field \"", key, "\" must be a number, found ", v.dump()));
  }
  *out = v.get<double>();
  return absl::OkStatus();
}

absl::Status ReadBool(const Json& j, const char* key, bool* out) {
  if (!Present(j, key)) return absl::OkStatus();
  const Json& v = j[key];
  if (!v.is_boolean()) {
    return ConfigError(absl::StrCat("field \"", key, "\" must be true or false, found ", v.dump()));
  }
  *out = v.get<bool>();
  return absl::OkStatus();
}

// Token ids may be an integer, null, or (LLaMA 3) a list of integers: the first is taken.
absl::Status ReadTokenId(const Json& j, const char* key, int64_t* out) {
  if (!Present(j, key)) return absl::OkStatus();
  const Json& v = j[key];
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) {
    *out = v[0].get<int64_t>();
    return absl::OkStatus();
  }
  return ReadInt(j, key, false, out);
}

// The RoPE description: transformers 5 keeps everything in "rope_parameters" (rope_theta,
// rope_type and the scaling fields); transformers 4 has top-level "rope_theta" plus an optional
// "rope_scaling" object whose kind is "rope_type" (or the older "type").
absl::Status ParseRope(const Json& j, LlamaConfig* config) {
  RETURN_IF_ERROR(ReadDouble(j, "rope_theta", &config->rope_theta));
  const char* field = nullptr;
  if (Present(j, "rope_parameters")) {
    field = "rope_parameters";
  } else if (Present(j, "rope_scaling")) {
    field = "rope_scaling";
  }
  if (field == nullptr) return absl::OkStatus();
  const Json& rope = j[field];
  if (!rope.is_object()) {
    return ConfigError(absl::StrCat("field \"", field, "\" must be an object"));
  }
  RETURN_IF_ERROR(Annotate(ReadDouble(rope, "rope_theta", &config->rope_theta), field));
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    if (!Present(rope, key)) continue;
    if (!rope[key].is_string()) {
      return ConfigError(absl::StrCat("field \"", field, ".", key, "\" must be a string"));
    }
    type = rope[key].get<std::string>();
    break;
  }
  if (type == "default") {
    config->rope_scaling = RopeScaling{};
    return absl::OkStatus();
  }
  if (type != "llama3") {
    return absl::UnimplementedError(
        absl::StrCat("config.json: ", field, " type \"", type,
                     "\" is not supported (supported: \"default\", \"llama3\")"));
  }
  RopeScaling s;
  s.type = RopeScaling::Type::kLlama3;
  for (const char* key : {"factor", "original_max_position_embeddings"}) {
    if (!Present(rope, key)) {
      return ConfigError(
          absl::StrCat("field \"", field, "\" of type llama3 is missing \"", key, "\""));
    }
  }
  std::string prefix = absl::StrCat(field, " (llama3)");
  RETURN_IF_ERROR(Annotate(ReadDouble(rope, "factor", &s.factor), prefix));
  RETURN_IF_ERROR(Annotate(ReadDouble(rope, "low_freq_factor", &s.low_freq_factor), prefix));
  RETURN_IF_ERROR(Annotate(ReadDouble(rope, "high_freq_factor", &s.high_freq_factor), prefix));
  RETURN_IF_ERROR(Annotate(
      ReadInt(rope, "original_max_position_embeddings", true, &s.original_max_position_embeddings),
      prefix));
  config->rope_scaling = s;
  return absl::OkStatus();
}

// The "llama3" fields as transformers writes them (transformers >= 4.43 reads "rope_type").
Json RopeScalingJson(const RopeScaling& s) {
  Json r = Json::object();
  r["factor"] = s.factor;
  r["low_freq_factor"] = s.low_freq_factor;
  r["high_freq_factor"] = s.high_freq_factor;
  r["original_max_position_embeddings"] = s.original_max_position_embeddings;
  r["rope_type"] = "llama3";
  return r;
}

}  // namespace

int64_t LlamaConfig::NumParameters() const {
  const int64_t attn = q_dim() * hidden_size         // q_proj
                       + 2 * kv_dim() * hidden_size  // k_proj, v_proj
                       + hidden_size * q_dim();      // o_proj
  const int64_t mlp = 3 * intermediate_size * hidden_size;
  const int64_t norms = 2 * hidden_size;
  const int64_t embed = vocab_size * hidden_size;
  return embed + num_hidden_layers * (attn + mlp + norms) + hidden_size +
         (tie_word_embeddings ? 0 : embed);
}

absl::Status LlamaConfig::Validate() const {
  std::vector<std::string> problems;
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) problems.push_back(absl::StrCat(name, " must be positive, found ", v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_attention_heads > 0 && num_key_value_heads > 0 &&
      num_attention_heads % num_key_value_heads != 0) {
    problems.push_back(absl::StrCat("num_attention_heads ", num_attention_heads,
                                    " is not divisible by num_key_value_heads ",
                                    num_key_value_heads));
  }
  if (head_dim > 0 && head_dim % 2 != 0) {
    problems.push_back(absl::StrCat("head_dim ", head_dim, " must be even for RoPE"));
  }
  if (!(rms_norm_eps > 0)) {
    problems.push_back(absl::StrCat("rms_norm_eps must be positive, found ", rms_norm_eps));
  }
  if (!(rope_theta > 0)) {
    problems.push_back(absl::StrCat("rope_theta must be positive, found ", rope_theta));
  }
  if (rope_scaling.type == RopeScaling::Type::kLlama3) {
    if (!(rope_scaling.factor > 0)) {
      problems.push_back(
          absl::StrCat("rope_scaling.factor must be positive, found ", rope_scaling.factor));
    }
    if (!(rope_scaling.low_freq_factor > 0) ||
        !(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor)) {
      problems.push_back(
          absl::StrCat("rope_scaling needs 0 < low_freq_factor < high_freq_factor, found ",
                       rope_scaling.low_freq_factor, " and ", rope_scaling.high_freq_factor));
    }
    if (rope_scaling.original_max_position_embeddings <= 0) {
      problems.push_back(
          absl::StrCat("rope_scaling.original_max_position_embeddings must be positive, found ",
                       rope_scaling.original_max_position_embeddings));
    }
  }
  if (!IsFloating(torch_dtype)) {
    problems.push_back(absl::StrCat("torch_dtype must be a floating type, found ",
                                    AbslView(DTypeTorchName(torch_dtype))));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid model config: ", absl::StrJoin(problems, "; ")));
}

absl::StatusOr<LlamaConfig> ParseHfConfig(std::string_view json_text) {
  Json j = Json::parse(json_text.begin(), json_text.end(), /*cb=*/nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) return ConfigError("not valid JSON");
  if (!j.is_object()) return ConfigError("not a JSON object");

  if (Present(j, "model_type")) {
    if (!j["model_type"].is_string() || j["model_type"].get<std::string>() != "llama") {
      return absl::UnimplementedError(absl::StrCat("config.json: model_type ",
                                                   j["model_type"].dump(),
                                                   " is not supported (only \"llama\")"));
    }
  }
  bool attention_bias = false;
  bool mlp_bias = false;
  RETURN_IF_ERROR(ReadBool(j, "attention_bias", &attention_bias));
  RETURN_IF_ERROR(ReadBool(j, "mlp_bias", &mlp_bias));
  if (attention_bias) {
    return absl::UnimplementedError(
        "config.json: attention_bias=true is not supported (LLaMA projections have no bias)");
  }
  if (mlp_bias) {
    return absl::UnimplementedError(
        "config.json: mlp_bias=true is not supported (LLaMA projections have no bias)");
  }
  if (Present(j, "hidden_act")) {
    const Json& act = j["hidden_act"];
    if (!act.is_string() || act.get<std::string>() != "silu") {
      return absl::UnimplementedError(absl::StrCat("config.json: hidden_act ", act.dump(),
                                                   " is not supported (only \"silu\")"));
    }
  }

  LlamaConfig c;
  RETURN_IF_ERROR(ReadInt(j, "vocab_size", true, &c.vocab_size));
  RETURN_IF_ERROR(ReadInt(j, "hidden_size", true, &c.hidden_size));
  RETURN_IF_ERROR(ReadInt(j, "intermediate_size", true, &c.intermediate_size));
  RETURN_IF_ERROR(ReadInt(j, "num_hidden_layers", true, &c.num_hidden_layers));
  RETURN_IF_ERROR(ReadInt(j, "num_attention_heads", true, &c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;
  RETURN_IF_ERROR(ReadInt(j, "num_key_value_heads", false, &c.num_key_value_heads));
  if (Present(j, "head_dim")) {
    RETURN_IF_ERROR(ReadInt(j, "head_dim", false, &c.head_dim));
  } else if (c.num_attention_heads > 0) {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return ConfigError(absl::StrCat("hidden_size ", c.hidden_size,
                                      " is not divisible by num_attention_heads ",
                                      c.num_attention_heads, " and no head_dim is given"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  RETURN_IF_ERROR(ReadInt(j, "max_position_embeddings", false, &c.max_position_embeddings));
  RETURN_IF_ERROR(ReadDouble(j, "rms_norm_eps", &c.rms_norm_eps));
  RETURN_IF_ERROR(ParseRope(j, &c));
  RETURN_IF_ERROR(ReadBool(j, "tie_word_embeddings", &c.tie_word_embeddings));
  // transformers 5 writes "dtype"; transformers 4 "torch_dtype".
  for (const char* key : {"dtype", "torch_dtype"}) {
    if (!Present(j, key)) continue;
    if (!j[key].is_string()) {
      return ConfigError(absl::StrCat("field \"", key, "\" must be a string"));
    }
    auto dtype = DTypeFromTorchName(j[key].get<std::string>());
    if (!dtype.ok()) return ConfigError(absl::StrCat(key, ": ", dtype.status().message()));
    c.torch_dtype = *dtype;
    break;
  }
  RETURN_IF_ERROR(ReadTokenId(j, "bos_token_id", &c.bos_token_id));
  RETURN_IF_ERROR(ReadTokenId(j, "eos_token_id", &c.eos_token_id));
  RETURN_IF_ERROR(Annotate(c.Validate(), "config.json"));
  return c;
}

std::string ToHfConfigJson(const LlamaConfig& config, std::string_view base_json) {
  Json j = Json::object();
  if (!base_json.empty()) {
    Json base = Json::parse(base_json.begin(), base_json.end(), nullptr, false);
    if (!base.is_discarded() && base.is_object()) j = std::move(base);
  }
  if (!Present(j, "architectures")) j["architectures"] = Json::array({"LlamaForCausalLM"});
  j["model_type"] = "llama";
  j["vocab_size"] = config.vocab_size;
  j["hidden_size"] = config.hidden_size;
  j["intermediate_size"] = config.intermediate_size;
  j["num_hidden_layers"] = config.num_hidden_layers;
  j["num_attention_heads"] = config.num_attention_heads;
  j["num_key_value_heads"] = config.num_key_value_heads;
  j["head_dim"] = config.head_dim;
  j["max_position_embeddings"] = config.max_position_embeddings;
  j["rms_norm_eps"] = config.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["tie_word_embeddings"] = config.tie_word_embeddings;
  if (!Present(j, "bos_token_id")) j["bos_token_id"] = config.bos_token_id;
  if (!Present(j, "eos_token_id")) j["eos_token_id"] = config.eos_token_id;

  // Keep the base's dtype spelling ("dtype" in transformers 5, else "torch_dtype").
  const std::string dtype_name(DTypeTorchName(config.torch_dtype));
  if (j.contains("dtype")) {
    j["dtype"] = dtype_name;
    j.erase("torch_dtype");
  } else {
    j["torch_dtype"] = dtype_name;
  }

  const bool llama3 = config.rope_scaling.type == RopeScaling::Type::kLlama3;
  if (j.contains("rope_parameters")) {
    // transformers 5 style: everything in rope_parameters; drop conflicting top-level fields.
    Json rope = llama3 ? RopeScalingJson(config.rope_scaling) : Json::object();
    if (!llama3) rope["rope_type"] = "default";
    rope["rope_theta"] = config.rope_theta;
    j["rope_parameters"] = std::move(rope);
    j.erase("rope_theta");
    j.erase("rope_scaling");
  } else {
    // transformers 4 style, which transformers 5 also reads.
    j["rope_theta"] = config.rope_theta;
    j["rope_scaling"] = llama3 ? RopeScalingJson(config.rope_scaling) : Json(nullptr);
  }
  return j.dump(2) + "\n";
}

std::string_view ProjName(Proj p) {
  switch (p) {
    case Proj::kQ:
      return "q_proj";
    case Proj::kK:
      return "k_proj";
    case Proj::kV:
      return "v_proj";
    case Proj::kO:
      return "o_proj";
    case Proj::kGate:
      return "gate_proj";
    case Proj::kUp:
      return "up_proj";
    case Proj::kDown:
      return "down_proj";
  }
  return "";
}

std::string_view ProjModulePath(Proj p) {
  switch (p) {
    case Proj::kQ:
      return "self_attn.q_proj";
    case Proj::kK:
      return "self_attn.k_proj";
    case Proj::kV:
      return "self_attn.v_proj";
    case Proj::kO:
      return "self_attn.o_proj";
    case Proj::kGate:
      return "mlp.gate_proj";
    case Proj::kUp:
      return "mlp.up_proj";
    case Proj::kDown:
      return "mlp.down_proj";
  }
  return "";
}

std::string ProjWeightName(int64_t layer, Proj p) {
  return absl::StrCat("model.layers.", layer, ".", AbslView(ProjModulePath(p)), ".weight");
}

std::array<int64_t, 2> ProjShape(const LlamaConfig& c, Proj p) {
  switch (p) {
    case Proj::kQ:
      return {c.q_dim(), c.hidden_size};
    case Proj::kK:
    case Proj::kV:
      return {c.kv_dim(), c.hidden_size};
    case Proj::kO:
      return {c.hidden_size, c.q_dim()};
    case Proj::kGate:
    case Proj::kUp:
      return {c.intermediate_size, c.hidden_size};
    case Proj::kDown:
      return {c.hidden_size, c.intermediate_size};
  }
  return {0, 0};
}

std::string InputNormName(int64_t layer) {
  return absl::StrCat("model.layers.", layer, ".input_layernorm.weight");
}

std::string PostAttnNormName(int64_t layer) {
  return absl::StrCat("model.layers.", layer, ".post_attention_layernorm.weight");
}

}  // namespace prunerd
