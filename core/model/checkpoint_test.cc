// Checkpoint::Open on tiny models built here, valid and broken in one way each.
#include "core/model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/io/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace prunerd {
namespace {

using ::prunerd::testing::I32LE;
using ::prunerd::testing::ReadBytes;
using ::prunerd::testing::TempDir;
using ::prunerd::testing::WriteBytes;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// vocab 16, hidden 8, MLP 12, 2 layers, 2 heads of 4, 1 KV head, untied.
nlohmann::json TinyConfig() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", 16},
          {"hidden_size", 8},
          {"intermediate_size", 12},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 1},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"tie_word_embeddings", false},
          {"torch_dtype", "float32"}};
}

// Tensors with distinct contents: element i of the k-th tensor is k + i / 1000.
std::map<std::string, HostTensor> TinyTensors() {
  std::map<std::string, std::vector<int64_t>> shapes = {{"model.embed_tokens.weight", {16, 8}},
                                                        {"model.norm.weight", {8}},
                                                        {"lm_head.weight", {16, 8}}};
  for (int l = 0; l < 2; ++l) {
    shapes[InputNormName(l)] = {8};
    shapes[PostAttnNormName(l)] = {8};
    shapes[ProjWeightName(l, Proj::kQ)] = {8, 8};
    shapes[ProjWeightName(l, Proj::kK)] = {4, 8};
    shapes[ProjWeightName(l, Proj::kV)] = {4, 8};
    shapes[ProjWeightName(l, Proj::kO)] = {8, 8};
    shapes[ProjWeightName(l, Proj::kGate)] = {12, 8};
    shapes[ProjWeightName(l, Proj::kUp)] = {12, 8};
    shapes[ProjWeightName(l, Proj::kDown)] = {8, 12};
  }
  std::map<std::string, HostTensor> out;
  int k = 0;
  for (const auto& [name, shape] : shapes) {
    HostTensor t = HostTensor::Zeros(DType::kF32, shape);
    float* p = static_cast<float*>(t.mutable_data());
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(k) + i / 1000.0f;
    out[name] = t;
    ++k;
  }
  return out;
}

std::vector<NamedTensor> Views(const std::map<std::string, HostTensor>& tensors) {
  std::vector<NamedTensor> v;
  for (const auto& [name, t] : tensors) v.push_back({name, t.view()});
  return v;
}

class CheckpointTest : public ::testing::Test {
 protected:
  std::string Dir() const { return tmp_.Join("model"); }
  // Writes config.json and model.safetensors into Dir().
  void WriteModel(const nlohmann::json& config, const std::map<std::string, HostTensor>& tensors) {
    std::filesystem::create_directories(Dir());
    WriteBytes(Dir() + "/config.json", config.dump(2));
    ASSERT_TRUE(SafetensorsWriter::Write(Dir() + "/model.safetensors", Views(tensors)).ok());
  }
  // Splits the tensors over two shards and writes the index.
  void WriteSharded(const std::map<std::string, HostTensor>& tensors) {
    std::filesystem::create_directories(Dir());
    WriteBytes(Dir() + "/config.json", TinyConfig().dump(2));
    std::vector<NamedTensor> a, b;
    nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                            {"weight_map", nlohmann::json::object()}};
    int i = 0;
    for (const auto& [name, t] : tensors) {
      const bool first = i++ % 2 == 0;
      (first ? a : b).push_back({name, t.view()});
      index["weight_map"][name] = first ? "part-a.safetensors" : "part-b.safetensors";
    }
    ASSERT_TRUE(SafetensorsWriter::Write(Dir() + "/part-a.safetensors", a).ok());
    ASSERT_TRUE(SafetensorsWriter::Write(Dir() + "/part-b.safetensors", b).ok());
    WriteBytes(Dir() + "/model.safetensors.index.json", index.dump(2));
  }
  absl::Status OpenStatus() { return Checkpoint::Open(Dir()).status(); }
  TempDir tmp_;
};

TEST_F(CheckpointTest, OpensValidTinyModelAndIgnoresExtraTensors) {
  auto tensors = TinyTensors();
  HostTensor inv_freq = HostTensor::Zeros(DType::kF32, {2});
  tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = inv_freq;
  WriteModel(TinyConfig(), tensors);
  auto ckpt = Checkpoint::Open(Dir());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->config().head_dim, 4);
  EXPECT_EQ((*ckpt)->config().NumParameters(),
            16 * 8 * 2 + 8 + 2 * (16 + 64 + 32 + 32 + 64 + 3 * 96));
  EXPECT_EQ((*ckpt)->TensorNames().size(), 1u + 2 * 9 + 1 + 1 + 1);
  for (const auto& [name, t] : TinyTensors()) {
    auto v = (*ckpt)->Get(name);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->shape, t.shape);
    ASSERT_EQ(v->nbytes, t.bytes->size());
    EXPECT_EQ(std::memcmp(v->data, t.bytes->data(), v->nbytes), 0) << name;
  }
  // Untied: the head is its own tensor.
  EXPECT_NE((*ckpt)->Get("lm_head.weight")->data, (*ckpt)->Get("model.embed_tokens.weight")->data);
  EXPECT_TRUE((*ckpt)->tokenizer_path().empty());
  EXPECT_TRUE((*ckpt)->auxiliary_files().empty());
}

TEST_F(CheckpointTest, AcceptsHalfAndBfloat16Tensors) {
  auto tensors = TinyTensors();
  tensors["model.norm.weight"] = HostTensor::Zeros(DType::kBF16, {8});
  tensors[ProjWeightName(1, Proj::kUp)] = HostTensor::Zeros(DType::kF16, {12, 8});
  WriteModel(TinyConfig(), tensors);
  auto ckpt = Checkpoint::Open(Dir());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->Get("model.norm.weight")->dtype, DType::kBF16);
  EXPECT_EQ((*ckpt)->Get(ProjWeightName(1, Proj::kUp))->nbytes, 12u * 8 * 2);
}

TEST_F(CheckpointTest, TiedModelUsesEmbeddingEvenWhenHeadIsStored) {
  nlohmann::json config = TinyConfig();
  config["tie_word_embeddings"] = true;
  WriteModel(config, TinyTensors());  // still stores lm_head.weight: ignored
  auto ckpt = Checkpoint::Open(Dir());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->Get("lm_head.weight")->data, (*ckpt)->Get("model.embed_tokens.weight")->data);
  auto names = (*ckpt)->TensorNames();
  EXPECT_EQ(std::count(names.begin(), names.end(), "lm_head.weight"), 0);
}

TEST_F(CheckpointTest, MissingConfigJson) {
  std::filesystem::create_directories(Dir());
  ASSERT_TRUE(SafetensorsWriter::Write(Dir() + "/model.safetensors", Views(TinyTensors())).ok());
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s), AllOf(HasSubstr(Dir()), HasSubstr("no config.json")));
}

TEST_F(CheckpointTest, MissingWeightsFile) {
  std::filesystem::create_directories(Dir());
  WriteBytes(Dir() + "/config.json", TinyConfig().dump());
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s), HasSubstr("no model.safetensors or model.safetensors.index.json"));
  WriteBytes(Dir() + "/pytorch_model.bin", "pickle");
  s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(s), HasSubstr("pytorch_model.bin"));
}

TEST_F(CheckpointTest, MissingTensor) {
  auto tensors = TinyTensors();
  tensors.erase(ProjWeightName(1, Proj::kUp));
  WriteModel(TinyConfig(), tensors);
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr(Dir()),
                                HasSubstr("missing tensor \"model.layers.1.mlp.up_proj.weight\""),
                                HasSubstr("expected shape [12, 8]")));
}

TEST_F(CheckpointTest, UntiedModelWithoutHead) {
  auto tensors = TinyTensors();
  tensors.erase("lm_head.weight");
  WriteModel(TinyConfig(), tensors);
  EXPECT_THAT(Message(OpenStatus()), HasSubstr("missing tensor \"lm_head.weight\""));
}

TEST_F(CheckpointTest, WrongShape) {
  auto tensors = TinyTensors();
  tensors[ProjWeightName(0, Proj::kDown)] = HostTensor::Zeros(DType::kF32, {12, 8});
  WriteModel(TinyConfig(), tensors);
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("\"model.layers.0.mlp.down_proj.weight\""),
                                HasSubstr("has shape [12, 8], expected [8, 12]")));
}

TEST_F(CheckpointTest, NonFloatingDtype) {
  auto tensors = TinyTensors();
  tensors["model.norm.weight"] = HostTensor::Zeros(DType::kI32, {8});
  WriteModel(TinyConfig(), tensors);
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("\"model.norm.weight\""), HasSubstr("dtype I32"),
                                HasSubstr("floating")));
}

TEST_F(CheckpointTest, InconsistentConfigNamesDirectory) {
  nlohmann::json config = TinyConfig();
  config["num_key_value_heads"] = 3;
  config["head_dim"] = 4;
  WriteModel(config, TinyTensors());
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr(Dir()), HasSubstr("config.json"),
                                HasSubstr("not divisible by num_key_value_heads 3")));
}

TEST_F(CheckpointTest, CorruptSafetensorsNamesTheFile) {
  std::filesystem::create_directories(Dir());
  WriteBytes(Dir() + "/config.json", TinyConfig().dump());
  WriteBytes(Dir() + "/model.safetensors", std::string("\x05\0\0\0\0\0\0\0{\"a\":", 13));
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr(Dir() + "/model.safetensors"), HasSubstr("JSON")));
}

TEST_F(CheckpointTest, ShardedModelOpens) {
  WriteSharded(TinyTensors());
  auto ckpt = Checkpoint::Open(Dir());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  for (const auto& [name, t] : TinyTensors()) {
    auto v = (*ckpt)->Get(name);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(std::memcmp(v->data, t.bytes->data(), v->nbytes), 0) << name;
  }
}

TEST_F(CheckpointTest, MissingShardNamedInIndex) {
  WriteSharded(TinyTensors());
  std::filesystem::remove(Dir() + "/part-b.safetensors");
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s),
              AllOf(HasSubstr("model.safetensors.index.json"),
                    HasSubstr("shard \"part-b.safetensors\""), HasSubstr("does not exist")));
}

TEST_F(CheckpointTest, IndexPointsToWrongShard) {
  WriteSharded(TinyTensors());
  auto index = nlohmann::json::parse(ReadBytes(Dir() + "/model.safetensors.index.json"));
  const std::string moved = index["weight_map"].begin().key();
  index["weight_map"][moved] = "part-b.safetensors";  // it lives in part-a
  WriteBytes(Dir() + "/model.safetensors.index.json", index.dump());
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("\"" + moved + "\""), HasSubstr("part-b.safetensors"),
                                HasSubstr("does not contain it")));
}

TEST_F(CheckpointTest, MalformedIndex) {
  WriteSharded(TinyTensors());
  WriteBytes(Dir() + "/model.safetensors.index.json", "{\"weight_map\": [");
  EXPECT_THAT(Message(OpenStatus()), HasSubstr("not a JSON object"));
  WriteBytes(Dir() + "/model.safetensors.index.json", "{\"metadata\": {}}");
  EXPECT_THAT(Message(OpenStatus()), HasSubstr("missing \"weight_map\""));
  WriteBytes(Dir() + "/model.safetensors.index.json",
             R"({"weight_map": {"model.norm.weight": "../outside.safetensors"}})");
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("is not a file name: \"../outside.safetensors\""));
}

TEST_F(CheckpointTest, TensorInTwoShards) {
  WriteSharded(TinyTensors());
  // part-b also gets a copy of a tensor that part-a holds.
  auto a = SafetensorsFile::Open(Dir() + "/part-a.safetensors");
  ASSERT_TRUE(a.ok());
  const std::string dup = (*a)->names()[0];
  std::vector<NamedTensor> b_tensors;
  auto b = SafetensorsFile::Open(Dir() + "/part-b.safetensors");
  ASSERT_TRUE(b.ok());
  for (const std::string& n : (*b)->names()) b_tensors.push_back({n, *(*b)->Get(n)});
  b_tensors.push_back({dup, *(*a)->Get(dup)});
  ASSERT_TRUE(SafetensorsWriter::Write(Dir() + "/part-b2.safetensors", b_tensors).ok());
  std::filesystem::rename(Dir() + "/part-b2.safetensors", Dir() + "/part-b.safetensors");
  auto s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("\"" + dup + "\""), HasSubstr("more than one shard")));
}

TEST_F(CheckpointTest, BadPaths) {
  auto s = Checkpoint::Open(tmp_.Join("does-not-exist")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s), HasSubstr("does-not-exist"));
  WriteModel(TinyConfig(), TinyTensors());
  s = Checkpoint::Open(Dir() + "/model.safetensors").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("pass the directory"));
}

// A llama2.c file built by hand: dim 8, hidden 12, 1 layer, 2 heads, 1 KV head, seq 4.
// Float k of the file (after the header) has the value k.
std::string TinyLlama2c(int32_t vocab, int64_t* total_floats) {
  const int64_t dim = 8, hidden = 12, kv_dim = 4, seq = 4, head = 4;
  const int64_t v = vocab < 0 ? -vocab : vocab;
  int64_t n = v * dim + dim + dim * dim + 2 * kv_dim * dim + dim * dim + dim + 3 * hidden * dim +
              dim + 2 * seq * head / 2 + (vocab < 0 ? v * dim : 0);
  std::string bytes =
      I32LE(dim) + I32LE(hidden) + I32LE(1) + I32LE(2) + I32LE(1) + I32LE(vocab) + I32LE(seq);
  for (int64_t k = 0; k < n; ++k) {
    float f = static_cast<float>(k);
    bytes.append(reinterpret_cast<const char*>(&f), 4);
  }
  *total_floats = n;
  return bytes;
}

float FloatAt(const TensorView& v, int64_t i) {
  float f;
  std::memcpy(&f, static_cast<const char*>(v.data) + 4 * i, 4);
  return f;
}

TEST(Llama2cTest, UnsharedClassifierFollowsTheRopeTables) {
  TempDir tmp;
  int64_t n = 0;
  WriteBytes(tmp.Join("m.bin"), TinyLlama2c(-10, &n));
  auto ckpt = Checkpoint::Open(tmp.Join("m.bin"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_FALSE((*ckpt)->config().tie_word_embeddings);
  EXPECT_EQ((*ckpt)->config().vocab_size, 10);
  auto head = (*ckpt)->Get("lm_head.weight");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->shape, (std::vector<int64_t>{10, 8}));
  // wcls is the last 80 floats of the file.
  EXPECT_EQ(FloatAt(*head, 0), static_cast<float>(n - 80));
  EXPECT_EQ(FloatAt(*head, 79), static_cast<float>(n - 1));
  EXPECT_EQ(FloatAt(*(*ckpt)->Get("model.embed_tokens.weight"), 79), 79.0f);
  // Query rows of head 1 (rows 4..7), per the permutation: new 4,5,6,7 = old 4,6,5,7.
  // wq starts after embed (80) and rms_att (8): float 88; row r starts at 88 + 8r.
  auto wq = (*ckpt)->Get(ProjWeightName(0, Proj::kQ));
  ASSERT_TRUE(wq.ok());
  const int old_row_for_new[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int r = 0; r < 8; ++r) EXPECT_EQ(FloatAt(*wq, 8 * r), 88.0f + 8 * old_row_for_new[r]);
  // Key rows (one head of 4): wk starts after wq (64 floats): float 152.
  auto wk = (*ckpt)->Get(ProjWeightName(0, Proj::kK));
  ASSERT_TRUE(wk.ok());
  for (int r = 0; r < 4; ++r) EXPECT_EQ(FloatAt(*wk, 8 * r), 152.0f + 8 * old_row_for_new[r]);
}

TEST(Llama2cTest, SharedClassifierAndTokenizerDiscovery) {
  TempDir tmp;
  int64_t n = 0;
  WriteBytes(tmp.Join("m.bin"), TinyLlama2c(10, &n));
  auto ckpt = Checkpoint::Open(tmp.Join("m.bin"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_TRUE((*ckpt)->config().tie_word_embeddings);
  EXPECT_TRUE((*ckpt)->tokenizer_path().empty());
  WriteBytes(tmp.Join("tok10.model"), "x");
  ckpt = Checkpoint::Open(tmp.Join("m.bin"));
  ASSERT_TRUE(ckpt.ok());
  EXPECT_EQ((*ckpt)->tokenizer_path(), tmp.Join("tok10.model"));
  EXPECT_EQ((*ckpt)->auxiliary_files(), std::vector<std::string>{tmp.Join("tok10.model")});
  WriteBytes(tmp.Join("tok20.model"), "x");  // ambiguous: none
  EXPECT_TRUE((*Checkpoint::Open(tmp.Join("m.bin")))->tokenizer_path().empty());
  WriteBytes(tmp.Join("tokenizer.model"), "x");  // the standard name wins
  EXPECT_EQ((*Checkpoint::Open(tmp.Join("m.bin")))->tokenizer_path(), tmp.Join("tokenizer.model"));
}

TEST(Llama2cTest, MalformedHeaders) {
  TempDir tmp;
  WriteBytes(tmp.Join("short.bin"), std::string(12, '\0'));
  auto s = Checkpoint::Open(tmp.Join("short.bin")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("less than the 28-byte header"));

  std::string bad = I32LE(8) + I32LE(12) + I32LE(1) + I32LE(3) + I32LE(2) + I32LE(10) + I32LE(4);
  WriteBytes(tmp.Join("heads.bin"), bad);
  s = Checkpoint::Open(tmp.Join("heads.bin")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("heads.bin"), HasSubstr("n_heads=3")));

  std::string zero = I32LE(8) + I32LE(12) + I32LE(0) + I32LE(2) + I32LE(1) + I32LE(10) + I32LE(4);
  WriteBytes(tmp.Join("zero.bin"), zero);
  EXPECT_THAT(Message(Checkpoint::Open(tmp.Join("zero.bin")).status()),
              AllOf(HasSubstr("non-positive"), HasSubstr("n_layers=0")));

  // A versioned export starts with the magic "ak42" and a version number.
  std::string v1 = I32LE(0x616b3432) + I32LE(1) + std::string(248, '\0');
  WriteBytes(tmp.Join("v1.bin"), v1);
  s = Checkpoint::Open(tmp.Join("v1.bin")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(s), AllOf(HasSubstr("version 1"), HasSubstr("legacy")));

  // Huge header values must not overflow the size computation.
  std::string huge = I32LE(1 << 30) + I32LE(1 << 30) + I32LE(1 << 30) + I32LE(2) + I32LE(1) +
                     I32LE(-(1 << 30)) + I32LE(1 << 30);
  WriteBytes(tmp.Join("huge.bin"), huge);
  s = Checkpoint::Open(tmp.Join("huge.bin")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("file has 28 bytes"));
}

}  // namespace
}  // namespace prunerd
