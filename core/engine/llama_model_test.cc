// Forward-pass tests on the bundled models. Oracles: hand computations (RoPE frequencies,
// RMSNorm), invariants (causality, batch independence), and the golden values of
// shared/data/README.md (stories260K greedy decoding, mean NLL on a fixed prefix).
#include "core/engine/llama_model.h"

#include <cmath>

#include "core/engine/model_loader.h"
#include "core/engine/perplexity.h"
#include "core/io/mmap_file.h"
#include "core/testing/test_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

LoadedModel Stories() {
  auto lm = OpenModel(TestDataPath("models/stories260K/stories260K.bin"), "");
  EXPECT_TRUE(lm.ok()) << lm.status();
  return std::move(*lm);
}

TEST(RopeTest, InverseFrequenciesByHand) {
  LlamaConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  at::Tensor f = RopeInvFreq(c);
  ASSERT_EQ(f.numel(), 4);
  // theta^(-2i/d) for i = 0..3: 1, 0.1, 0.01, 0.001.
  const double expect[] = {1.0, 0.1, 0.01, 0.001};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f[i].item<float>(), expect[i], 1e-6 * expect[i] + 1e-9);
}

TEST(RopeTest, Llama3ScalingMatchesFormula) {
  LlamaConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_scaling = RopeScaling{.type = RopeScaling::Type::kLlama3, .factor = 8.0,
                               .low_freq_factor = 1.0, .high_freq_factor = 4.0,
                               .original_max_position_embeddings = 8192};
  at::Tensor f = RopeInvFreq(c);
  // Scalar re-derivation of the llama3 rule in double.
  for (int i = 0; i < 64; ++i) {
    const double inv = std::pow(500000.0, -2.0 * i / 128.0);
    const double wavelen = 2 * M_PI / inv;
    double expect;
    if (wavelen < 8192.0 / 4.0) {
      expect = inv;                       // high frequency: unchanged
    } else if (wavelen > 8192.0 / 1.0) {
      expect = inv / 8.0;                 // low frequency: divided by the factor
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expect = (1 - smooth) * inv / 8.0 + smooth * inv;
    }
    EXPECT_NEAR(f[i].item<float>(), expect, 2e-6 * expect) << "i=" << i;
  }
}

TEST(RmsNormTest, ByHand) {
  at::Tensor x = at::tensor({3.0f, 4.0f}).view({1, 2});
  at::Tensor w = at::tensor({1.0f, 2.0f});
  at::Tensor y = RmsNorm(x, w, 0.0);
  // rms = sqrt((9 + 16) / 2) = 3.5355; y = (3, 4) / 3.5355 * (1, 2).
  EXPECT_NEAR(y[0][0].item<float>(), 3.0 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(y[0][1].item<float>(), 8.0 / std::sqrt(12.5), 1e-6);
}

TEST(Stories260KTest, GreedyDecodingMatchesGolden) {
  LoadedModel lm = Stories();
  // shared/data/README.md: greedy decoding from BOS (id 1), the temperature-0 sample of
  // llama2.c's doc/stories260K.md.
  const std::vector<int64_t> golden = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                       315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410,
                                       408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
                                       328, 432, 358, 394, 261, 370, 432, 352};
  std::vector<int64_t> ids = GreedyDecode(lm.model, {1}, golden.size() - 1, ForwardOptions{});
  EXPECT_EQ(ids, golden);
}

TEST(Stories260KTest, MeanNllOnTinyStoriesPrefixMatchesGolden) {
  LoadedModel lm = Stories();
  auto text = ReadFileToString(TestDataPath("text/tinystories/tinystories_val_head.txt"));
  ASSERT_TRUE(text.ok());
  // README: the first 600 characters, BOS + BPE with a dummy prefix, cut to 160 tokens;
  // mean NLL over the 159 next-token predictions = 1.34121 nats.
  std::vector<int32_t> ids = lm.tokenizer->Encode(text->substr(0, 600), /*add_bos=*/true);
  ASSERT_GE(ids.size(), 160u);
  ids.resize(160);
  TokenWindows w{.windows = 1, .seqlen = 160, .ids = ids};
  auto nll = WindowNll(lm.model, WindowsTensor(w), ForwardOptions{}, nullptr);
  ASSERT_TRUE(nll.ok());
  EXPECT_NEAR((*nll)[0], 1.34121, 5e-5);
}

TEST(Stories260KTest, AttentionIsCausalAndBatchIndependent) {
  LoadedModel lm = Stories();
  at::Tensor a = at::randint(3, 512, {1, 48}, at::kLong);
  at::Tensor b = a.clone();
  b.narrow(1, 30, 18).random_(3, 512);  // change only the future of position 29
  at::Tensor la = Logits(lm.model, a, ForwardOptions{});
  at::Tensor lb = Logits(lm.model, b, ForwardOptions{});
  EXPECT_TRUE(at::allclose(la.narrow(1, 0, 30), lb.narrow(1, 0, 30), 1e-5, 1e-5));
  EXPECT_FALSE(at::allclose(la.narrow(1, 30, 18), lb.narrow(1, 30, 18), 1e-3, 1e-3));
  // The same sequence alone and inside a batch of 3 gives the same logits.
  at::Tensor batch = at::cat({b, a, b}, 0);
  at::Tensor lbatch = Logits(lm.model, batch, ForwardOptions{.batch_size = 3});
  EXPECT_TRUE(at::allclose(lbatch[1], la[0], 1e-5, 1e-5));
}

TEST(Prose16MTest, HalfPrecisionWeightsRunInFloat32AndBFloat16) {
  auto lm = OpenModel(TestDataPath("models/prose16M"), "");
  ASSERT_TRUE(lm.ok()) << lm.status();
  EXPECT_EQ(lm->model.embed.scalar_type(), at::kHalf);  // aliases the fp16 shards
  at::Tensor tokens = at::randint(3, 8192, {2, 32}, at::kLong);
  at::Tensor f32 = Logits(lm->model, tokens, ForwardOptions{});
  at::Tensor bf16 = Logits(lm->model, tokens, ForwardOptions{.dtype = at::kBFloat16});
  ASSERT_TRUE(f32.isfinite().all().item<bool>());
  // bf16 keeps ~3 significant digits: the argmax agrees on most positions.
  const double agree = (f32.argmax(-1) == bf16.argmax(-1)).to(at::kFloat).mean().item<double>();
  EXPECT_GT(agree, 0.8);
}

}  // namespace
}  // namespace prunerd
