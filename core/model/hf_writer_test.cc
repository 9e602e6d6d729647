// HfModelWriter: the output is parsed by hand (file names, index, headers) and reopened with
// Checkpoint::Open; tensors must come back byte for byte.
#include "core/model/hf_writer.h"

#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/io/test_files.h"
#include "core/model/checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace prunerd {
namespace {

namespace fs = std::filesystem;
using ::prunerd::testing::ReadBytes;
using ::prunerd::testing::TempDir;
using ::prunerd::testing::TestDataDir;
using ::prunerd::testing::WriteBytes;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// Copies every tensor of `src` through a writer into `out`.
absl::Status CopyModel(const Checkpoint& src, const std::string& out, HfWriterOptions options) {
  HfModelWriter w(out, src.config(), src.config_json(), src.auxiliary_files(), options);
  for (const std::string& name : src.TensorNames()) {
    auto v = src.Get(name);
    if (!v.ok()) return v.status();
    absl::Status s = w.Add(name, *v);
    if (!s.ok()) return s;
  }
  return w.Finish();
}

void ExpectSameTensors(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.TensorNames(), b.TensorNames());
  for (const std::string& name : a.TensorNames()) {
    auto va = a.Get(name);
    auto vb = b.Get(name);
    ASSERT_TRUE(va.ok() && vb.ok()) << name;
    EXPECT_EQ(va->dtype, vb->dtype) << name;
    EXPECT_EQ(va->shape, vb->shape) << name;
    ASSERT_EQ(va->nbytes, vb->nbytes) << name;
    EXPECT_EQ(std::memcmp(va->data, vb->data, va->nbytes), 0) << name;
  }
}

TEST(HfModelWriterTest, ShardedCopyOfProse16MRoundTrips) {
  auto src = Checkpoint::Open(TestDataDir() + "/models/prose16M");
  ASSERT_TRUE(src.ok()) << src.status();
  TempDir tmp;
  const std::string out = tmp.Join("out");
  HfWriterOptions options;
  options.max_shard_bytes = 8 << 20;
  ASSERT_TRUE(CopyModel(**src, out, options).ok());

  // Files: config, index, shards named model-0000i-of-0000N, the two auxiliary files.
  auto index = nlohmann::json::parse(ReadBytes(out + "/model.safetensors.index.json"));
  std::set<std::string> shards;
  for (auto& [name, shard] : index["weight_map"].items()) shards.insert(shard);
  const int n = static_cast<int>(shards.size());
  ASSERT_GE(n, 4);  // 31.5 MB of tensors in shards of at most 8 MiB (the embedding is 6 MiB)
  std::set<std::string> expected_files = {"config.json", "model.safetensors.index.json",
                                          "tokenizer.model", "tokenizer_config.json"};
  for (int i = 1; i <= n; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", i, n);
    EXPECT_EQ(shards.count(name), 1u) << name;
    expected_files.insert(name);
  }
  EXPECT_EQ(FilesIn(out), expected_files);
  EXPECT_EQ(index["weight_map"].size(), 74u);
  EXPECT_EQ(index["metadata"]["total_size"], 31'470'336);  // as in the source's index
  EXPECT_EQ(index["metadata"]["total_parameters"], 15'735'168);
  EXPECT_EQ(FilesIn(tmp.path()), std::set<std::string>{"out"});  // no temp dir left

  // Each shard's header, by hand: at most 8 MiB of data unless a single tensor, format "pt".
  for (const std::string& shard : shards) {
    const std::string raw = ReadBytes(out + "/" + shard);
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<uint8_t>(raw[i]);
    auto header = nlohmann::json::parse(raw.substr(8, len));
    EXPECT_EQ(header["__metadata__"]["format"], "pt");
    EXPECT_LE(raw.size() - 8 - len, static_cast<size_t>(8 << 20)) << shard;
  }

  auto copy = Checkpoint::Open(out);
  ASSERT_TRUE(copy.ok()) << copy.status();
  ExpectSameTensors(**src, **copy);
  EXPECT_EQ((*copy)->config().NumParameters(), (*src)->config().NumParameters());
  EXPECT_EQ(ReadBytes(out + "/tokenizer.model"),
            ReadBytes(TestDataDir() + "/models/prose16M/tokenizer.model"));
  auto config = nlohmann::json::parse(ReadBytes(out + "/config.json"));
  EXPECT_EQ(config["rope_parameters"]["rope_theta"], 10000.0);
  EXPECT_EQ(config["head_dim"], 64);
  EXPECT_EQ(config["tokenizer_class"], "LlamaTokenizer");
}

TEST(HfModelWriterTest, SingleShardIsModelSafetensors) {
  auto src = Checkpoint::Open(TestDataDir() + "/models/prose16M");
  ASSERT_TRUE(src.ok()) << src.status();
  TempDir tmp;
  ASSERT_TRUE(CopyModel(**src, tmp.Join("one"), {}).ok());
  EXPECT_EQ(FilesIn(tmp.Join("one")),
            (std::set<std::string>{"config.json", "model.safetensors", "tokenizer.model",
                                   "tokenizer_config.json"}));
  auto copy = Checkpoint::Open(tmp.Join("one"));
  ASSERT_TRUE(copy.ok()) << copy.status();
  ExpectSameTensors(**src, **copy);
}

TEST(HfModelWriterTest, Llama2cExportKeepsConvertedWeightsAndTokenizer) {
  auto src = Checkpoint::Open(TestDataDir() + "/models/stories260K/stories260K.bin");
  ASSERT_TRUE(src.ok()) << src.status();
  TempDir tmp;
  HfWriterOptions options;
  options.max_shard_bytes = 1;  // one tensor per shard
  ASSERT_TRUE(CopyModel(**src, tmp.Join("hf"), options).ok());
  auto copy = Checkpoint::Open(tmp.Join("hf"));
  ASSERT_TRUE(copy.ok()) << copy.status();
  ExpectSameTensors(**src, **copy);  // q/k stay in rotate-half layout (not permuted twice)
  const LlamaConfig& c = (*copy)->config();
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_TRUE(c.tie_word_embeddings);
  auto index = nlohmann::json::parse(ReadBytes(tmp.Join("hf") + "/model.safetensors.index.json"));
  const int tensors = 1 + 5 * 9 + 1;  // no lm_head: tied
  EXPECT_EQ(index["weight_map"].size(), static_cast<size_t>(tensors));
  EXPECT_TRUE(fs::exists(tmp.Join("hf") + "/model-00047-of-00047.safetensors"));
  // tok512.model is published under the name transformers looks for.
  EXPECT_EQ(ReadBytes(tmp.Join("hf") + "/tokenizer.model"),
            ReadBytes(TestDataDir() + "/models/stories260K/tok512.model"));
  EXPECT_EQ((*copy)->tokenizer_path(), tmp.Join("hf") + "/tokenizer.model");
}

// A structurally pruned model: fewer heads (q_dim != hidden) and a smaller MLP.
TEST(HfModelWriterTest, PrunedShapesRoundTripThroughConfig) {
  LlamaConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 10;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 6;  // q_dim 12 != hidden 16
  c.torch_dtype = DType::kBF16;
  TempDir tmp;
  HfModelWriter w(tmp.Join("p"), c, "", {});
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"model.embed_tokens.weight", {32, 16}},
      {"model.norm.weight", {16}},
      {"lm_head.weight", {32, 16}},
      {InputNormName(0), {16}},
      {PostAttnNormName(0), {16}}};
  for (Proj p : kAllProjs) {
    auto s = ProjShape(c, p);
    shapes.push_back({ProjWeightName(0, p), {s[0], s[1]}});
  }
  std::vector<HostTensor> keep;
  for (auto& [name, shape] : shapes) {
    keep.push_back(HostTensor::Zeros(DType::kBF16, shape));
    static_cast<uint8_t*>(keep.back().mutable_data())[0] = static_cast<uint8_t>(keep.size());
    ASSERT_TRUE(w.Add(name, keep.back().view()).ok()) << name;
  }
  ASSERT_TRUE(w.Finish().ok());
  auto ckpt = Checkpoint::Open(tmp.Join("p"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->config().head_dim, 6);
  EXPECT_EQ((*ckpt)->config().q_dim(), 12);
  EXPECT_EQ((*ckpt)->config().intermediate_size, 10);
  EXPECT_EQ((*ckpt)->config().torch_dtype, DType::kBF16);
  EXPECT_EQ((*ckpt)->Get(ProjWeightName(0, Proj::kO))->shape, (std::vector<int64_t>{16, 12}));
  for (size_t i = 0; i < shapes.size(); ++i) {
    auto v = (*ckpt)->Get(shapes[i].first);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(static_cast<const uint8_t*>(v->data)[0], i + 1) << shapes[i].first;
  }
}

TEST(HfModelWriterTest, IncompleteModelFailsAndLeavesNothing) {
  auto src = Checkpoint::Open(TestDataDir() + "/models/stories260K/stories260K.bin");
  ASSERT_TRUE(src.ok()) << src.status();
  TempDir tmp;
  {
    HfModelWriter w(tmp.Join("out"), (*src)->config(), "", {});
    for (const std::string& name : (*src)->TensorNames()) {
      if (name == ProjWeightName(2, Proj::kV)) continue;
      ASSERT_TRUE(w.Add(name, *(*src)->Get(name)).ok());
    }
    auto s = w.Finish();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s), HasSubstr("missing tensor \"model.layers.2.self_attn.v_proj.weight\""));
    EXPECT_FALSE(fs::exists(tmp.Join("out")));
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));  // the temp directory went with the writer
}

TEST(HfModelWriterTest, AbandonedWriterRemovesItsTempDirectory) {
  auto src = Checkpoint::Open(TestDataDir() + "/models/stories260K/stories260K.bin");
  ASSERT_TRUE(src.ok()) << src.status();
  TempDir tmp;
  {
    HfWriterOptions options;
    options.max_shard_bytes = 100'000;
    HfModelWriter w(tmp.Join("out"), (*src)->config(), "", {}, options);
    for (const std::string& name : (*src)->TensorNames()) {
      ASSERT_TRUE(w.Add(name, *(*src)->Get(name)).ok());
    }
    EXPECT_FALSE(fs::is_empty(tmp.path()));  // work in progress exists
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(HfModelWriterTest, RefusesNonEmptyOutputButAcceptsEmptyOne) {
  auto src = Checkpoint::Open(TestDataDir() + "/models/stories260K/stories260K.bin");
  ASSERT_TRUE(src.ok()) << src.status();
  TempDir tmp;
  fs::create_directories(tmp.Join("full"));
  WriteBytes(tmp.Join("full") + "/keep.txt", "mine");
  auto s = CopyModel(**src, tmp.Join("full"), {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), AllOf(HasSubstr(tmp.Join("full")), HasSubstr("not empty")));
  EXPECT_EQ(FilesIn(tmp.Join("full")), std::set<std::string>{"keep.txt"});

  fs::create_directories(tmp.Join("empty"));
  ASSERT_TRUE(CopyModel(**src, tmp.Join("empty"), {}).ok());
  EXPECT_TRUE(Checkpoint::Open(tmp.Join("empty")).ok());
  // Parents are created.
  ASSERT_TRUE(CopyModel(**src, tmp.Join("a/b/c"), {}).ok());
  EXPECT_TRUE(Checkpoint::Open(tmp.Join("a/b/c")).ok());
}

TEST(HfModelWriterTest, RejectsBadTensorsAndMisuse) {
  auto src = Checkpoint::Open(TestDataDir() + "/models/stories260K/stories260K.bin");
  ASSERT_TRUE(src.ok()) << src.status();
  TempDir tmp;
  HfModelWriter w(tmp.Join("out"), (*src)->config(), "", {tmp.Join("no-such-tokenizer.model")});
  TensorView norm = *(*src)->Get("model.norm.weight");
  ASSERT_TRUE(w.Add("model.norm.weight", norm).ok());
  auto s = w.Add("model.norm.weight", norm);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("added twice"));
  TensorView bad = norm;
  bad.nbytes -= 4;
  EXPECT_THAT(Message(w.Add("x", bad)), HasSubstr("needs 256 bytes"));
  for (const std::string& name : (*src)->TensorNames()) {
    if (name == "model.norm.weight") continue;
    ASSERT_TRUE(w.Add(name, *(*src)->Get(name)).ok());
  }
  s = w.Finish();  // the auxiliary file does not exist
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s), HasSubstr("no-such-tokenizer.model"));
  EXPECT_FALSE(fs::exists(tmp.Join("out")));
}

}  // namespace
}  // namespace prunerd
