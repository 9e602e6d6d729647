// Opens the two bundled models and checks them against data/README.md and against the raw
// file bytes, read here without the loader's code.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/io/test_files.h"
#include "core/model/checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace prunerd {
namespace {

using ::prunerd::testing::ReadBytes;
using ::prunerd::testing::TestDataDir;
using ::prunerd::testing::WriteBytes;
using ::testing::EndsWith;
using ::testing::HasSubstr;

std::string Prose16M() { return TestDataDir() + "/models/prose16M"; }
std::string Stories260K() { return TestDataDir() + "/models/stories260K/stories260K.bin"; }

TEST(Prose16MTest, ConfigMatchesReadme) {
  auto ckpt = Checkpoint::Open(Prose16M());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const LlamaConfig& c = (*ckpt)->config();
  EXPECT_EQ((*ckpt)->format(), CheckpointFormat::kHuggingFace);
  EXPECT_EQ(c.hidden_size, 384);
  EXPECT_EQ(c.num_hidden_layers, 8);
  EXPECT_EQ(c.num_attention_heads, 6);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 1024);
  EXPECT_EQ(c.vocab_size, 8192);
  EXPECT_EQ(c.max_position_embeddings, 1024);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, DType::kF16);
  EXPECT_EQ(c.num_queries_per_kv(), 3);
  EXPECT_EQ(c.KvCacheValuesPerToken(), 2 * 8 * 2 * 64);
}

TEST(Prose16MTest, ParameterCount) {
  auto ckpt = Checkpoint::Open(Prose16M());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  // By hand from the architecture: embedding, 8 x (2 norms, q, k, v, o, gate, up, down), norm.
  const int64_t per_layer = 2 * 384 + 384 * 384 + 2 * (128 * 384) + 384 * 384 + 3 * 384 * 1024;
  const int64_t expected = 8192 * 384 + 8 * per_layer + 384;
  EXPECT_EQ(expected, 15'735'168);
  EXPECT_EQ((*ckpt)->config().NumParameters(), expected);
  // transformers wrote the same count into the index.
  auto index = nlohmann::json::parse(ReadBytes(Prose16M() + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_parameters"].get<int64_t>(), expected);
  // And the stored tensors add up to it (no lm_head: tied).
  int64_t stored = 0;
  for (const std::string& name : (*ckpt)->TensorNames()) stored += (*ckpt)->Get(name)->numel();
  EXPECT_EQ(stored, expected);
  EXPECT_EQ((*ckpt)->TotalBytes(), 2 * expected);
  EXPECT_EQ((*ckpt)->TensorNames().size(), 1u + 8u * 9u + 1u);
}

TEST(Prose16MTest, TensorsAreTheRawBytesOfTheShards) {
  auto ckpt = Checkpoint::Open(Prose16M());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto index = nlohmann::json::parse(ReadBytes(Prose16M() + "/model.safetensors.index.json"));
  int checked = 0;
  for (const std::string shard :
       {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    const std::string raw = ReadBytes(Prose16M() + "/" + shard);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(raw[i]);
    auto header = nlohmann::json::parse(raw.substr(8, n));
    for (auto& [name, entry] : header.items()) {
      if (name == "__metadata__") continue;
      EXPECT_EQ(index["weight_map"][name], shard);
      auto view = (*ckpt)->Get(name);
      ASSERT_TRUE(view.ok()) << view.status();
      EXPECT_EQ(view->dtype, DType::kF16);
      EXPECT_EQ(view->shape, entry["shape"].get<std::vector<int64_t>>());
      const uint64_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
      ASSERT_EQ(view->nbytes, end - begin);
      EXPECT_EQ(std::memcmp(view->data, raw.data() + 8 + n + begin, view->nbytes), 0) << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 74);
}

TEST(Prose16MTest, TiedHeadResolvesToEmbeddingAndFilesAreFound) {
  auto ckpt = Checkpoint::Open(Prose16M());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto head = (*ckpt)->Get("lm_head.weight");
  auto embed = (*ckpt)->Get("model.embed_tokens.weight");
  ASSERT_TRUE(head.ok() && embed.ok());
  EXPECT_EQ(head->data, embed->data);
  EXPECT_EQ(head->shape, (std::vector<int64_t>{8192, 384}));
  EXPECT_THAT((*ckpt)->tokenizer_path(), EndsWith("prose16M/tokenizer.model"));
  EXPECT_THAT((*ckpt)->auxiliary_files(),
              ::testing::UnorderedElementsAre(EndsWith("/tokenizer.model"),
                                              EndsWith("/tokenizer_config.json")));
  EXPECT_THAT((*ckpt)->config_json(), HasSubstr("\"rope_parameters\""));
  auto missing = (*ckpt)->Get("model.layers.8.self_attn.q_proj.weight");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("model.layers.8.self_attn"));
}

// stories260K.bin, read by hand: 7 int32 then fp32 arrays in llama2.c's order.
class Stories260KTest : public ::testing::Test {
 protected:
  static constexpr int64_t kDim = 64, kHidden = 172, kLayers = 5, kHeads = 8, kKvHeads = 4,
                           kVocab = 512, kSeq = 512, kHeadDim = 8, kKvDim = 32;
  void SetUp() override {
    raw_ = ReadBytes(Stories260K());
    ASSERT_EQ(raw_.size(), 1'056'540u);
    floats_.resize((raw_.size() - 28) / 4);
    std::memcpy(floats_.data(), raw_.data() + 28, floats_.size() * 4);
    // Offsets (in floats) of each array, from data/README.md's layout.
    int64_t off = 0;
    auto next = [&](int64_t n) {
      int64_t o = off;
      off += n;
      return o;
    };
    emb_ = next(kVocab * kDim);
    rms_att_ = next(kLayers * kDim);
    wq_ = next(kLayers * kDim * kDim);
    wk_ = next(kLayers * kKvDim * kDim);
    wv_ = next(kLayers * kKvDim * kDim);
    wo_ = next(kLayers * kDim * kDim);
    rms_ffn_ = next(kLayers * kDim);
    w1_ = next(kLayers * kHidden * kDim);
    w2_ = next(kLayers * kDim * kHidden);
    w3_ = next(kLayers * kHidden * kDim);
    rms_final_ = next(kDim);
    fcr_ = next(kSeq * kHeadDim / 2);
    fci_ = next(kSeq * kHeadDim / 2);
    ASSERT_EQ(off, static_cast<int64_t>(floats_.size()));
  }
  // Row `r` of a [rows, cols] matrix starting at float offset `base`.
  const float* Row(int64_t base, int64_t cols, int64_t r) const {
    return floats_.data() + base + r * cols;
  }
  static std::vector<float> AsFloats(const TensorView& v) {
    std::vector<float> out(v.numel());
    std::memcpy(out.data(), v.data, v.nbytes);
    return out;
  }
  std::string raw_;
  std::vector<float> floats_;
  int64_t emb_, rms_att_, wq_, wk_, wv_, wo_, rms_ffn_, w1_, w2_, w3_, rms_final_, fcr_, fci_;
};

TEST_F(Stories260KTest, ConfigMatchesReadme) {
  auto ckpt = Checkpoint::Open(Stories260K());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const LlamaConfig& c = (*ckpt)->config();
  EXPECT_EQ((*ckpt)->format(), CheckpointFormat::kLlama2c);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.torch_dtype, DType::kF32);
  EXPECT_EQ(c.NumParameters(), 260'032);
  EXPECT_EQ(c.NumParameters(),
            kVocab * kDim +
                kLayers * (2 * kDim + 2 * kDim * kDim + 2 * kKvDim * kDim + 3 * kHidden * kDim) +
                kDim);
  EXPECT_EQ((*ckpt)->TotalBytes(), 4 * 260'032);
  EXPECT_THAT((*ckpt)->tokenizer_path(), EndsWith("stories260K/tok512.model"));
  EXPECT_TRUE((*ckpt)->config_json().empty());
}

TEST_F(Stories260KTest, QueryAndKeyRowsArePermutedToRotateHalf) {
  auto ckpt = Checkpoint::Open(Stories260K());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  int rows_checked = 0;
  for (int64_t l = 0; l < kLayers; ++l) {
    for (auto [proj, base, heads] : {std::tuple{Proj::kQ, wq_ + l * kDim * kDim, kHeads},
                                     std::tuple{Proj::kK, wk_ + l * kKvDim * kDim, kKvHeads}}) {
      auto view = (*ckpt)->Get(ProjWeightName(l, proj));
      ASSERT_TRUE(view.ok()) << view.status();
      ASSERT_EQ(view->shape, (std::vector<int64_t>{heads * kHeadDim, kDim}));
      std::vector<float> w = AsFloats(*view);
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t i = 0; i < kHeadDim / 2; ++i) {
          const float* lo = w.data() + (h * kHeadDim + i) * kDim;
          const float* hi = w.data() + (h * kHeadDim + kHeadDim / 2 + i) * kDim;
          EXPECT_EQ(std::memcmp(lo, Row(base, kDim, h * kHeadDim + 2 * i), kDim * 4), 0);
          EXPECT_EQ(std::memcmp(hi, Row(base, kDim, h * kHeadDim + 2 * i + 1), kDim * 4), 0);
          rows_checked += 2;
        }
      }
      // The permutation really moves rows: row 1 of head 0 is not old row 1.
      EXPECT_NE(std::memcmp(w.data() + 1 * kDim, Row(base, kDim, 1), kDim * 4), 0);
    }
  }
  EXPECT_EQ(rows_checked, kLayers * (kDim + kKvDim));
}

TEST_F(Stories260KTest, OtherTensorsAreCopiedUnchanged) {
  auto ckpt = Checkpoint::Open(Stories260K());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto same = [&](const std::string& name, int64_t base, int64_t n) {
    auto view = (*ckpt)->Get(name);
    ASSERT_TRUE(view.ok()) << view.status();
    ASSERT_EQ(view->numel(), n) << name;
    EXPECT_EQ(std::memcmp(view->data, floats_.data() + base, n * 4), 0) << name;
  };
  same("model.embed_tokens.weight", emb_, kVocab * kDim);
  same("lm_head.weight", emb_, kVocab * kDim);  // shared classifier
  same("model.norm.weight", rms_final_, kDim);
  for (int64_t l = 0; l < kLayers; ++l) {
    same(InputNormName(l), rms_att_ + l * kDim, kDim);
    same(PostAttnNormName(l), rms_ffn_ + l * kDim, kDim);
    same(ProjWeightName(l, Proj::kV), wv_ + l * kKvDim * kDim, kKvDim * kDim);
    same(ProjWeightName(l, Proj::kO), wo_ + l * kDim * kDim, kDim * kDim);
    same(ProjWeightName(l, Proj::kGate), w1_ + l * kHidden * kDim, kHidden * kDim);
    same(ProjWeightName(l, Proj::kDown), w2_ + l * kDim * kHidden, kDim * kHidden);
    same(ProjWeightName(l, Proj::kUp), w3_ + l * kHidden * kDim, kHidden * kDim);
  }
}

// The point of the permutation: attention scores with llama2.c's interleaved RoPE (using the
// file's own freq_cis tables) on the raw weights equal those with Hugging Face's rotate-half
// RoPE (theta 10000) on the converted weights.
TEST_F(Stories260KTest, RotateHalfRopeOnConvertedWeightsMatchesInterleavedRopeOnRaw) {
  auto ckpt = Checkpoint::Open(Stories260K());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> x(kDim), y(kDim);
  for (float& v : x) v = normal(rng);
  for (float& v : y) v = normal(rng);
  auto matvec = [](const float* w, int64_t rows, const std::vector<float>& v) {
    std::vector<double> out(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < kDim; ++c) out[r] += double{w[r * kDim + c]} * v[c];
    return out;
  };
  auto rope_interleaved = [&](std::vector<double> v, int64_t pos) {
    for (size_t h0 = 0; h0 < v.size(); h0 += kHeadDim) {
      for (int64_t j = 0; j < kHeadDim / 2; ++j) {
        double c = floats_[fcr_ + pos * kHeadDim / 2 + j];
        double s = floats_[fci_ + pos * kHeadDim / 2 + j];
        double a = v[h0 + 2 * j], b = v[h0 + 2 * j + 1];
        v[h0 + 2 * j] = a * c - b * s;
        v[h0 + 2 * j + 1] = a * s + b * c;
      }
    }
    return v;
  };
  auto rope_half = [&](std::vector<double> v, int64_t pos) {
    for (size_t h0 = 0; h0 < v.size(); h0 += kHeadDim) {
      for (int64_t j = 0; j < kHeadDim / 2; ++j) {
        double angle = pos * std::pow(10000.0, -2.0 * j / kHeadDim);
        double a = v[h0 + j], b = v[h0 + kHeadDim / 2 + j];
        v[h0 + j] = a * std::cos(angle) - b * std::sin(angle);
        v[h0 + kHeadDim / 2 + j] = b * std::cos(angle) + a * std::sin(angle);
      }
    }
    return v;
  };
  const int64_t m = 37, n = 5;
  for (int64_t l : {0, 4}) {
    auto q_raw = rope_interleaved(matvec(Row(wq_ + l * kDim * kDim, kDim, 0), kDim, x), m);
    auto k_raw = rope_interleaved(matvec(Row(wk_ + l * kKvDim * kDim, kDim, 0), kKvDim, y), n);
    std::vector<float> wq = AsFloats(*(*ckpt)->Get(ProjWeightName(l, Proj::kQ)));
    std::vector<float> wk = AsFloats(*(*ckpt)->Get(ProjWeightName(l, Proj::kK)));
    auto q_hf = rope_half(matvec(wq.data(), kDim, x), m);
    auto k_hf = rope_half(matvec(wk.data(), kKvDim, y), n);
    for (int64_t h = 0; h < kHeads; ++h) {
      const int64_t g = h / (kHeads / kKvHeads);
      double s_raw = 0, s_hf = 0;
      for (int64_t d = 0; d < kHeadDim; ++d) {
        s_raw += q_raw[h * kHeadDim + d] * k_raw[g * kHeadDim + d];
        s_hf += q_hf[h * kHeadDim + d] * k_hf[g * kHeadDim + d];
      }
      EXPECT_NEAR(s_hf, s_raw, 1e-5 * (1 + std::abs(s_raw))) << "layer " << l << " head " << h;
    }
  }
}

TEST(Llama2cFileTest, WrongSizeIsRejectedNamingTheSizes) {
  const std::string raw = ReadBytes(Stories260K());
  ::prunerd::testing::TempDir tmp;
  WriteBytes(tmp.Join("short.bin"), raw.substr(0, raw.size() - 4));
  WriteBytes(tmp.Join("long.bin"), raw + std::string(4, '\0'));
  auto short_ckpt = Checkpoint::Open(tmp.Join("short.bin"));
  EXPECT_EQ(short_ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(short_ckpt.status().message()),
              ::testing::AllOf(HasSubstr("short.bin"), HasSubstr("1056536 bytes"),
                               HasSubstr("implies 1056540 bytes"), HasSubstr("dim=64")));
  auto long_ckpt = Checkpoint::Open(tmp.Join("long.bin"));
  EXPECT_EQ(long_ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(long_ckpt.status().message()),
              ::testing::AllOf(HasSubstr("1056544 bytes"), HasSubstr("implies 1056540 bytes")));
}

}  // namespace
}  // namespace prunerd
