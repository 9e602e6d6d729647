#include "core/model/llama_config.h"

#include <string>

#include "core/io/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace prunerd {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// A transformers-4 style LLaMA-2-7B-like config (no head_dim, top-level rope_theta).
nlohmann::json OldStyleConfig() {
  return nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 11008, "max_position_embeddings": 4096,
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
    "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 500000.0,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32000,
    "pretraining_tp": 1, "transformers_version": "4.31.0"
  })");
}

absl::StatusOr<LlamaConfig> Parse(const nlohmann::json& j) { return ParseHfConfig(j.dump()); }

void ExpectSameConfig(const LlamaConfig& a, const LlamaConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_DOUBLE_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_DOUBLE_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_DOUBLE_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_DOUBLE_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
  EXPECT_DOUBLE_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
  EXPECT_EQ(a.rope_scaling.original_max_position_embeddings,
            b.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
}

TEST(ParseHfConfigTest, OlderStyleTopLevelRopeTheta) {
  auto c = Parse(OldStyleConfig());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->head_dim, 128);  // derived: 4096 / 32
  EXPECT_EQ(c->num_key_value_heads, 32);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_EQ(c->torch_dtype, DType::kBF16);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  // LLaMA-2-7B has 6,738,415,616 parameters (the published count).
  EXPECT_EQ(c->NumParameters(), 6'738'415'616);
  EXPECT_EQ(c->KvCacheValuesPerToken(), 2 * 32 * 4096);
}

TEST(ParseHfConfigTest, DefaultsWhenOptionalFieldsAreAbsent) {
  nlohmann::json j = OldStyleConfig();
  for (const char* k :
       {"num_key_value_heads", "rope_theta", "rope_scaling", "torch_dtype", "tie_word_embeddings",
        "rms_norm_eps", "max_position_embeddings", "model_type", "hidden_act"}) {
    j.erase(k);
  }
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 32);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);  // transformers' LlamaConfig default
  EXPECT_EQ(c->max_position_embeddings, 2048);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, DType::kF32);
}

TEST(ParseHfConfigTest, TransformersFiveRopeParametersAndDtype) {
  const std::string text = ::prunerd::testing::ReadBytes(::prunerd::testing::TestDataDir() +
                                                         "/models/prose16M/config.json");
  ASSERT_FALSE(text.empty());
  auto c = ParseHfConfig(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->torch_dtype, DType::kF16);  // from "dtype"
  EXPECT_EQ(c->head_dim, 64);
  nlohmann::json j = nlohmann::json::parse(text);
  j["rope_parameters"]["rope_theta"] = 250000.0;
  c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 250000.0);
}

TEST(ParseHfConfigTest, Llama3RopeScaling) {
  nlohmann::json j = OldStyleConfig();
  j["rope_scaling"] = {{"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192},
                       {"rope_type", "llama3"}};
  j["num_key_value_heads"] = 8;
  j["eos_token_id"] = {128001, 128008, 128009};
  j["bos_token_id"] = 128000;
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->eos_token_id, 128001);
  EXPECT_EQ(c->bos_token_id, 128000);
  EXPECT_EQ(c->num_queries_per_kv(), 4);

  // The older "type" key, and the transformers-5 spelling inside rope_parameters.
  j["rope_scaling"].erase("rope_type");
  j["rope_scaling"]["type"] = "llama3";
  j["rope_scaling"]["factor"] = 32.0;
  c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 32.0);
  nlohmann::json t5 = OldStyleConfig();
  t5.erase("rope_scaling");
  t5.erase("rope_theta");
  t5["rope_parameters"] = {{"rope_type", "llama3"},   {"rope_theta", 500000.0},
                           {"factor", 8.0},           {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  c = Parse(t5);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
}

TEST(ParseHfConfigTest, UnsupportedRopeScalingIsUnimplementedNamingTheKind) {
  for (const char* kind : {"yarn", "linear", "dynamic", "longrope"}) {
    nlohmann::json j = OldStyleConfig();
    j["rope_scaling"] = {{"rope_type", kind}, {"factor", 4.0}};
    auto s = Parse(j).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << kind;
    EXPECT_THAT(Message(s),
                AllOf(HasSubstr("rope_scaling"), HasSubstr(std::string("\"") + kind + "\"")));
  }
  nlohmann::json j = OldStyleConfig();
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 1e6}};
  EXPECT_EQ(Parse(j).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ParseHfConfigTest, Llama3ScalingMissingFactor) {
  nlohmann::json j = OldStyleConfig();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"original_max_position_embeddings", 8192}};
  auto s = Parse(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("missing \"factor\""));
}

TEST(ParseHfConfigTest, UnsupportedArchitectureFeatures) {
  nlohmann::json j = OldStyleConfig();
  j["attention_bias"] = true;
  auto s = Parse(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(s), HasSubstr("attention_bias"));
  j = OldStyleConfig();
  j["mlp_bias"] = true;
  EXPECT_THAT(Message(Parse(j).status()), HasSubstr("mlp_bias"));
  j = OldStyleConfig();
  j["hidden_act"] = "gelu";
  s = Parse(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("hidden_act"), HasSubstr("gelu")));
  j = OldStyleConfig();
  j["model_type"] = "qwen2";
  s = Parse(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(s), HasSubstr("qwen2"));
}

TEST(ParseHfConfigTest, HeadsNotDivisibleByKvHeads) {
  nlohmann::json j = OldStyleConfig();
  j["num_key_value_heads"] = 5;
  auto s = Parse(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s),
              HasSubstr("num_attention_heads 32 is not divisible by num_key_value_heads 5"));
}

TEST(ParseHfConfigTest, HiddenNotDivisibleByHeadsWithoutHeadDim) {
  nlohmann::json j = OldStyleConfig();
  j["num_attention_heads"] = 24;
  j["num_key_value_heads"] = 8;
  auto s = Parse(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("hidden_size 4096"),
                                HasSubstr("not divisible by num_attention_heads 24"),
                                HasSubstr("no head_dim")));
  // With an explicit head_dim the same sizes are fine (q_dim 24 * 128 != hidden_size).
  j["head_dim"] = 128;
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->q_dim(), 3072);
  EXPECT_EQ(ProjShape(*c, Proj::kQ), (std::array<int64_t, 2>{3072, 4096}));
  EXPECT_EQ(ProjShape(*c, Proj::kO), (std::array<int64_t, 2>{4096, 3072}));
  EXPECT_EQ(ProjShape(*c, Proj::kK), (std::array<int64_t, 2>{1024, 4096}));
}

TEST(ParseHfConfigTest, ZeroLayersAndOtherNonPositiveSizes) {
  nlohmann::json j = OldStyleConfig();
  j["num_hidden_layers"] = 0;
  auto s = Parse(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("num_hidden_layers must be positive, found 0"));
  j = OldStyleConfig();
  j["vocab_size"] = -3;
  EXPECT_THAT(Message(Parse(j).status()), HasSubstr("vocab_size must be positive, found -3"));
  j = OldStyleConfig();
  j["rms_norm_eps"] = 0;
  EXPECT_THAT(Message(Parse(j).status()), HasSubstr("rms_norm_eps must be positive"));
}

TEST(ParseHfConfigTest, MalformedJsonAndFields) {
  EXPECT_THAT(Message(ParseHfConfig("{ not json").status()), HasSubstr("not valid JSON"));
  EXPECT_THAT(Message(ParseHfConfig("[]").status()), HasSubstr("not a JSON object"));
  nlohmann::json j = OldStyleConfig();
  j.erase("hidden_size");
  auto s = Parse(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("missing required field \"hidden_size\""));
  j = OldStyleConfig();
  j["intermediate_size"] = "11008";
  EXPECT_THAT(Message(Parse(j).status()),
              HasSubstr("field \"intermediate_size\" must be an integer"));
  j = OldStyleConfig();
  j["torch_dtype"] = "float8";
  EXPECT_THAT(Message(Parse(j).status()), HasSubstr("float8"));
  j = OldStyleConfig();
  j["tie_word_embeddings"] = "yes";
  EXPECT_THAT(Message(Parse(j).status()), HasSubstr("tie_word_embeddings"));
}

TEST(LlamaConfigTest, ValidateNamesEveryProblem) {
  LlamaConfig c;
  c.vocab_size = 10;
  c.hidden_size = 8;
  c.intermediate_size = 0;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 2;
  c.head_dim = 3;
  auto s = c.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("intermediate_size must be positive"),
                                HasSubstr("not divisible by num_key_value_heads 2"),
                                HasSubstr("head_dim 3 must be even")));
  c.intermediate_size = 4;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  EXPECT_TRUE(c.Validate().ok());
  c.rope_scaling.type = RopeScaling::Type::kLlama3;
  c.rope_scaling.low_freq_factor = 4;
  c.rope_scaling.high_freq_factor = 4;
  EXPECT_THAT(Message(c.Validate()), HasSubstr("low_freq_factor < high_freq_factor"));
}

TEST(LlamaConfigTest, NamesShapesAndParameterCounts) {
  EXPECT_EQ(ProjWeightName(3, Proj::kUp), "model.layers.3.mlp.up_proj.weight");
  EXPECT_EQ(ProjWeightName(0, Proj::kQ), "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(ProjWeightName(12, Proj::kO), "model.layers.12.self_attn.o_proj.weight");
  EXPECT_EQ(ProjName(Proj::kDown), "down_proj");
  EXPECT_EQ(ProjModulePath(Proj::kGate), "mlp.gate_proj");
  EXPECT_EQ(InputNormName(2), "model.layers.2.input_layernorm.weight");
  EXPECT_EQ(PostAttnNormName(2), "model.layers.2.post_attention_layernorm.weight");
  EXPECT_EQ(kAllProjs.size(), 7u);

  LlamaConfig c;
  c.vocab_size = 100;
  c.hidden_size = 16;
  c.intermediate_size = 40;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  EXPECT_EQ(ProjShape(c, Proj::kK), (std::array<int64_t, 2>{8, 16}));
  EXPECT_EQ(ProjShape(c, Proj::kV), (std::array<int64_t, 2>{8, 16}));
  EXPECT_EQ(ProjShape(c, Proj::kGate), (std::array<int64_t, 2>{40, 16}));
  EXPECT_EQ(ProjShape(c, Proj::kDown), (std::array<int64_t, 2>{16, 40}));
  // embed 1600; per layer: norms 32, q 256, k 128, v 128, o 256, mlp 3*640; final norm 16;
  // lm_head 1600 when untied.
  const int64_t per_layer = 32 + 256 + 128 + 128 + 256 + 1920;
  EXPECT_EQ(c.NumParameters(), 1600 + 2 * per_layer + 16 + 1600);
  c.tie_word_embeddings = true;
  EXPECT_EQ(c.NumParameters(), 1600 + 2 * per_layer + 16);
  EXPECT_EQ(c.KvCacheValuesPerToken(), 2 * 2 * 8);
}

TEST(ToHfConfigJsonTest, KeepsTransformersFiveBaseAndRoundTrips) {
  const std::string base = ::prunerd::testing::ReadBytes(::prunerd::testing::TestDataDir() +
                                                         "/models/prose16M/config.json");
  auto orig = ParseHfConfig(base);
  ASSERT_TRUE(orig.ok()) << orig.status();
  LlamaConfig pruned = *orig;  // a structurally pruned variant
  pruned.intermediate_size = 512;
  pruned.num_attention_heads = 4;
  pruned.num_key_value_heads = 2;
  const std::string out = ToHfConfigJson(pruned, base);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["head_dim"], 64);
  EXPECT_EQ(j["num_attention_heads"], 4);
  EXPECT_EQ(j["num_key_value_heads"], 2);
  EXPECT_EQ(j["intermediate_size"], 512);
  EXPECT_EQ(j["tokenizer_class"], "LlamaTokenizer");  // other fields kept
  EXPECT_EQ(j["transformers_version"], "5.17.0");
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["rope_parameters"]["rope_type"], "default");
  EXPECT_EQ(j["rope_parameters"]["rope_theta"], 10000.0);
  EXPECT_FALSE(j.contains("rope_theta"));
  EXPECT_EQ(j["dtype"], "float16");
  EXPECT_FALSE(j.contains("torch_dtype"));
  auto back = ParseHfConfig(out);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameConfig(*back, pruned);
}

TEST(ToHfConfigJsonTest, OlderStyleBaseWithLlama3AndNoBase) {
  nlohmann::json base = OldStyleConfig();
  base["rope_scaling"] = {{"factor", 8.0},
                          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192},
                          {"rope_type", "llama3"}};
  auto orig = Parse(base);
  ASSERT_TRUE(orig.ok()) << orig.status();
  const std::string out = ToHfConfigJson(*orig, base.dump());
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["rope_theta"], 500000.0);
  EXPECT_EQ(j["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["head_dim"], 128);
  EXPECT_EQ(j["pretraining_tp"], 1);
  auto back = ParseHfConfig(out);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameConfig(*back, *orig);

  // Without a base (a llama2.c model being exported).
  LlamaConfig c;
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_hidden_layers = 5;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 8;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = true;
  const std::string fresh = ToHfConfigJson(c);
  auto jf = nlohmann::json::parse(fresh);
  EXPECT_EQ(jf["model_type"], "llama");
  EXPECT_EQ(jf["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(jf["hidden_act"], "silu");
  EXPECT_TRUE(jf["rope_scaling"].is_null());
  auto fresh_back = ParseHfConfig(fresh);
  ASSERT_TRUE(fresh_back.ok()) << fresh_back.status();
  ExpectSameConfig(*fresh_back, c);
}

}  // namespace
}  // namespace prunerd
