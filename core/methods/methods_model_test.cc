// Model-level invariants of the pruning methods (methods.md §9.1) on the bundled stories260K
// (llama2.c, GQA, fp32, 5 layers) and on a tiny random LLaMA whose widths divide by 8.
// Oracles: the dense checkpoint itself (bitwise comparisons), counting rules written out
// here, the naive per-group rebuild (naive_rebuild_oracle.h), and the public API's errors.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/api/engine.h"
#include "core/api/job_spec.h"
#include "core/api/testing/spec_builders.h"
#include "core/data/text_data.h"
#include "core/engine/executor.h"
#include "core/engine/llama_model.h"
#include "core/engine/model_loader.h"
#include "core/engine/perplexity.h"
#include "core/io/remove_tree.h"
#include "core/methods/barber.h"
#include "core/methods/barber_gradients.h"
#include "core/methods/magnitude_wanda.h"
#include "core/methods/naive_rebuild_oracle.h"
#include "core/methods/registry.h"
#include "core/methods/sparsegpt.h"
#include "core/model/checkpoint.h"
#include "core/testing/temp_dir.h"
#include "core/testing/test_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

const char kStories[] = "models/stories260K/stories260K.bin";
const char kStoriesText[] = "text/tinystories/tinystories_val_head.txt";

// ---------------------------------------------------------------------------------------
// Helpers.

LlamaModel LoadModel(const std::string& path) {
  auto ckpt = Checkpoint::Open(path);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  auto model = LoadLlama(std::shared_ptr<const Checkpoint>(std::move(*ckpt)));
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(*model);
}

LlamaModel Stories() { return LoadModel(TestDataPath(kStories)); }

// Calibration windows of real text: [n, t] int64.
at::Tensor StoriesWindows(int64_t n, int64_t t, uint64_t seed) {
  auto lm = OpenModel(TestDataPath(kStories), "");
  EXPECT_TRUE(lm.ok()) << lm.status();
  auto corpus = LoadCorpus(TestDataPath(kStoriesText), lm->tokenizer.get(),
                           static_cast<int32_t>(lm->model.config.vocab_size));
  EXPECT_TRUE(corpus.ok()) << corpus.status();
  auto windows = SampleCalibration(*corpus, n, t, seed);
  EXPECT_TRUE(windows.ok()) << windows.status();
  return WindowsTensor(*windows);
}

// A random LLaMA whose every input width divides by 8 (for 4:8), 2 layers, GQA.
LlamaModel TinyRandomModel() {
  at::manual_seed(1234);
  LlamaModel m;
  LlamaConfig& c = m.config;
  c.vocab_size = 64;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  m.embed = at::randn({c.vocab_size, c.hidden_size});
  m.final_norm = at::ones({c.hidden_size});
  m.lm_head = at::randn({c.vocab_size, c.hidden_size}) / 8;
  m.layers.resize(c.num_hidden_layers);
  for (LayerWeights& l : m.layers) {
    l.input_norm = 1 + 0.1 * at::randn({c.hidden_size});
    l.post_norm = 1 + 0.1 * at::randn({c.hidden_size});
    for (Proj p : kAllProjs) {
      auto shape = ProjShape(c, p);
      l[p] = at::randn({shape[0], shape[1]}) / std::sqrt(static_cast<double>(shape[1]));
    }
  }
  return m;
}

v1::JobSpec Spec(v1::Method method, SparsityPattern pattern) { return MethodSpec(method, pattern); }

v1::JobSpec BarberSpec(v1::Method init, double tau, v1::BarberGranularity g,
                       SparsityPattern pattern) {
  v1::JobSpec spec = Spec(v1::METHOD_BARBER, pattern);
  *spec.mutable_barber() = BarberOpts{.init = init, .tau = tau, .granularity = g};
  return spec;
}

struct Pruned {
  ExecutorResult result;
  v1::PruneReport report;
};

// Prunes `model` in place through the executor (the path RunPruneJob takes).
Pruned PruneModel(LlamaModel& model, const at::Tensor& tokens, const v1::JobSpec& spec,
                  const LayerProgress& progress = nullptr) {
  auto pruner = MakePruner(spec);
  EXPECT_TRUE(pruner.ok()) << pruner.status();
  auto r = PruneLayerwise(model, tokens, **pruner, PatternOf(spec), ForwardOptions{}, progress);
  EXPECT_TRUE(r.ok()) << r.status();
  Pruned out{std::move(*r), {}};
  (*pruner)->Report(&out.report);
  return out;
}

bool BitwiseEqual(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  // Compare the bytes (distinguishes −0 from 0 and would see NaN payloads).
  return at::equal(a.contiguous().view({-1}).view(at::kByte),
                   b.contiguous().view({-1}).view(at::kByte));
}

int64_t Zeros(const at::Tensor& t) { return t.eq(0).sum().item<int64_t>(); }

// Exactly n zeros in every aligned group of m input columns.
bool ExactNM(const at::Tensor& w, int64_t n, int64_t m) {
  return at::all(w.eq(0).view({w.size(0), w.size(1) / m, m}).sum(2).eq(n)).item<bool>();
}

// Every nonzero of `pruned` equals the dense weight bit for bit.
bool NonzerosEqualDense(const at::Tensor& pruned, const at::Tensor& dense) {
  at::Tensor keep = pruned.ne(0);
  return BitwiseEqual(pruned.masked_select(keep), dense.masked_select(keep));
}

v1::JobSpec EndToEndSpec(const v1::JobSpec& method_spec) {
  v1::JobSpec spec = method_spec;
  spec.set_model(TestDataPath(kStories));
  spec.mutable_calibration()->set_uri(TestDataPath(kStoriesText));
  spec.mutable_calibration()->set_num_samples(8);
  spec.mutable_calibration()->set_seqlen(64);
  spec.set_skip_calibration_eval(true);
  return spec;
}

absl::StatusOr<v1::PruneReport> RunEndToEnd(const v1::JobSpec& method_spec,
                                            const std::string& out) {
  return RunPruneJob(EndToEndSpec(method_spec), RunOptions{.output_dir = out}, nullptr);
}

// ---------------------------------------------------------------------------------------
// §9.1 items 1–2 through the public API: ratio 0 is a bitwise no-op for every method, and the
// written model is the source model.

TEST(EndToEnd, RatioZeroIsABitwiseNoOpForEveryMethod) {
  const LlamaModel dense = Stories();
  std::vector<v1::JobSpec> specs = {
      Spec(v1::METHOD_MAGNITUDE, {.ratio = 0}), Spec(v1::METHOD_WANDA, {.ratio = 0}),
      Spec(v1::METHOD_SPARSEGPT, {.ratio = 0}),
      BarberSpec(v1::METHOD_WANDA, 0.5, v1::BARBER_GRANULARITY_OUTPUT1, {.ratio = 0}),
      BarberSpec(v1::METHOD_SPARSEGPT, 1.0, v1::BARBER_GRANULARITY_BLOCK, {.ratio = 0})};
  for (const v1::JobSpec& s : specs) {
    SCOPED_TRACE(EnumName(s.method()));
    const TempDir tmp;
    const std::string out = tmp.Join("out");
    auto r = RunEndToEnd(s, out);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->sparsity(), 0.0);
    const LlamaModel written = LoadModel(out);
    EXPECT_TRUE(BitwiseEqual(written.embed, dense.embed));
    EXPECT_TRUE(BitwiseEqual(written.final_norm, dense.final_norm));
    EXPECT_TRUE(BitwiseEqual(written.lm_head, dense.lm_head));
    for (size_t l = 0; l < dense.layers.size(); ++l) {
      EXPECT_TRUE(BitwiseEqual(written.layers[l].input_norm, dense.layers[l].input_norm));
      EXPECT_TRUE(BitwiseEqual(written.layers[l].post_norm, dense.layers[l].post_norm));
      for (Proj p : kAllProjs) {
        EXPECT_TRUE(BitwiseEqual(written.layers[l][p], dense.layers[l][p]))
            << "layer " << l << " " << ProjName(p);
      }
    }
  }
}

// §9.1 items 2, 3, 5 through the public API: scope, exact counts, kept values.
TEST(EndToEnd, MagnitudeAndWandaCountsValuesAndScope) {
  const LlamaModel dense = Stories();
  for (v1::Method method : {v1::METHOD_MAGNITUDE, v1::METHOD_WANDA}) {
    SCOPED_TRACE(EnumName(method));
    const TempDir tmp;
    const std::string out = tmp.Join("out");
    auto r = RunEndToEnd(Spec(method, {.ratio = 0.5}), out);
    ASSERT_TRUE(r.ok()) << r.status();
    const LlamaModel pruned = LoadModel(out);
    EXPECT_TRUE(BitwiseEqual(pruned.embed, dense.embed));
    EXPECT_TRUE(BitwiseEqual(pruned.final_norm, dense.final_norm));
    EXPECT_TRUE(BitwiseEqual(pruned.lm_head, dense.lm_head));
    int64_t zeros = 0, total = 0;
    for (size_t l = 0; l < dense.layers.size(); ++l) {
      EXPECT_TRUE(BitwiseEqual(pruned.layers[l].input_norm, dense.layers[l].input_norm));
      EXPECT_TRUE(BitwiseEqual(pruned.layers[l].post_norm, dense.layers[l].post_norm));
      for (Proj p : kAllProjs) {
        const at::Tensor& w = pruned.layers[l][p];
        const at::Tensor& d = dense.layers[l][p];
        ASSERT_EQ(Zeros(d), 0);
        EXPECT_TRUE(NonzerosEqualDense(w, d)) << "layer " << l << " " << ProjName(p);
        if (method == v1::METHOD_WANDA) {
          // Every row: exactly floor(in · 0.5) zeros.
          EXPECT_TRUE(at::all(w.eq(0).sum(1).eq(d.size(1) / 2)).item<bool>())
              << "layer " << l << " " << ProjName(p);
        } else {
          EXPECT_EQ(Zeros(w), d.numel() / 2) << "layer " << l << " " << ProjName(p);
        }
        zeros += Zeros(w);
        total += w.numel();
      }
    }
    EXPECT_DOUBLE_EQ(r->sparsity(), double(zeros) / double(total));
    EXPECT_EQ(r->sparsity_detail().zeros(), zeros);
    EXPECT_EQ(r->sparsity_detail().weights(), total);
    EXPECT_EQ(r->sparsity_detail().per_matrix_size(), 7 * int(dense.layers.size()));
  }
}

TEST(EndToEnd, FourToEightIsRejectedOnStories260K) {
  // stories260K's hidden_dim 172 divides by 4 but not by 8.
  const TempDir tmp;
  const std::string out = tmp.Join("out");
  auto r = RunEndToEnd(Spec(v1::METHOD_WANDA, {.ratio = 0.5, .n = 4, .m = 8}), out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("multiple of 8"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("down_proj has 172"));
  EXPECT_FALSE(std::filesystem::exists(out));
  // 2:4 on the same model is fine (and exact), through the same API, for Barber too.
  auto ok = RunEndToEnd(BarberSpec(v1::METHOD_WANDA, 1.0, v1::BARBER_GRANULARITY_OUTPUT1,
                                   {.ratio = 0.5, .n = 2, .m = 4}),
                        out);
  ASSERT_TRUE(ok.ok()) << ok.status();
  const LlamaModel pruned = LoadModel(out);
  for (const LayerWeights& l : pruned.layers) {
    for (Proj p : kAllProjs) EXPECT_TRUE(ExactNM(l[p], 2, 4)) << ProjName(p);
  }
}

// ---------------------------------------------------------------------------------------
// §9.1 item 4: N:M exact for Wanda, SparseGPT and Barber; 2:4 on stories260K, 4:8 on a tiny
// random LLaMA.

TEST(Executor, NMPatternsAreExact) {
  const at::Tensor stories_tokens = StoriesWindows(8, 64, 1);
  const LlamaModel stories_dense = Stories();
  const at::Tensor tiny_tokens = at::randint(0, 64, {6, 32}, at::kLong);
  const LlamaModel tiny_dense = TinyRandomModel();
  for (bool tiny : {false, true}) {
    const SparsityPattern pattern = tiny ? SparsityPattern{.ratio = 0.5, .n = 4, .m = 8}
                                         : SparsityPattern{.ratio = 0.5, .n = 2, .m = 4};
    for (const v1::JobSpec& spec :
         {Spec(v1::METHOD_WANDA, pattern), Spec(v1::METHOD_SPARSEGPT, pattern),
          BarberSpec(v1::METHOD_WANDA, 1.0, v1::BARBER_GRANULARITY_OUTPUT1, pattern),
          BarberSpec(v1::METHOD_MAGNITUDE, 0.5, v1::BARBER_GRANULARITY_OUTPUT1, pattern),
          BarberSpec(v1::METHOD_SPARSEGPT, 0.5, v1::BARBER_GRANULARITY_OUTPUT1, pattern)}) {
      SCOPED_TRACE(EnumName(spec.method()) + " " + PatternName(pattern));
      LlamaModel model = tiny ? TinyRandomModel() : Stories();
      const LlamaModel& dense = tiny ? tiny_dense : stories_dense;
      Pruned pr = PruneModel(model, tiny ? tiny_tokens : stories_tokens, spec);
      for (size_t l = 0; l < model.layers.size(); ++l) {
        for (Proj p : kAllProjs) {
          const at::Tensor& w = model.layers[l][p];
          EXPECT_TRUE(ExactNM(w, pattern.n, pattern.m)) << "layer " << l << " " << ProjName(p);
          if (spec.method() == v1::METHOD_WANDA || (spec.method() == v1::METHOD_BARBER &&
                                                    spec.barber().init() != v1::METHOD_SPARSEGPT)) {
            EXPECT_TRUE(NonzerosEqualDense(w, dense.layers[l][p]));
          }
        }
      }
      if (spec.method() == v1::METHOD_BARBER && spec.barber().tau() == 1.0) {
        EXPECT_GT(pr.report.barber().total().swaps(), 0);
      }
    }
  }
}

// SparseGPT: exact counts Σ_blocks floor(rows · cols_b · r) (blocksize 128), the OBS update
// changes kept weights, norms and embeddings untouched.
TEST(Executor, SparseGptCountsAreExactPerBlock) {
  const at::Tensor tokens = StoriesWindows(8, 64, 2);
  const LlamaModel dense = Stories();
  LlamaModel model = Stories();
  PruneModel(model, tokens, Spec(v1::METHOD_SPARSEGPT, {.ratio = 0.3}));
  for (size_t l = 0; l < model.layers.size(); ++l) {
    for (Proj p : kAllProjs) {
      const at::Tensor& w = model.layers[l][p];
      int64_t expect = 0;
      for (int64_t c0 = 0; c0 < w.size(1); c0 += 128) {
        const int64_t cols = std::min<int64_t>(128, w.size(1) - c0);
        expect += static_cast<int64_t>(std::floor(w.size(0) * cols * 0.3));
      }
      EXPECT_EQ(Zeros(w), expect) << "layer " << l << " " << ProjName(p);
      // Reconstruction: kept weights moved.
      EXPECT_FALSE(NonzerosEqualDense(w, dense.layers[l][p]));
    }
    EXPECT_TRUE(BitwiseEqual(model.layers[l].input_norm, dense.layers[l].input_norm));
    EXPECT_TRUE(BitwiseEqual(model.layers[l].post_norm, dense.layers[l].post_norm));
  }
  // down_proj (172 inputs): 64·128·0.3 → 2457 and 64·44·0.3 → 844, one short of
  // floor(64·172·0.3) = 3302: the per-block rule, documented in sparsegpt.h.
  EXPECT_EQ(Zeros(model.layers[0][Proj::kDown]), 2457 + 844);
}

// ---------------------------------------------------------------------------------------
// §9.1 items 6–8 at the layer level: the Barber rebuild of one stories260K layer against the
// naive per-group oracle, for every granularity, and the block scope of each phase.

struct LayerFixture {
  LlamaModel model = Stories();
  at::Tensor inputs;  // layer 1's inputs: the dense layer 0's outputs
  RopeCache rope;
  StageTimer timer{at::Device(at::kCPU)};
  SparsityPattern pattern{.ratio = 0.5};

  LayerFixture() {
    const at::Tensor tokens = StoriesWindows(8, 64, 3);
    rope = MakeRope(model.config, tokens.size(1), at::kCPU, at::kFloat);
    at::NoGradGuard no_grad;
    inputs = DecoderLayer(model.layers[0], Embed(model, tokens, at::kCPU, at::kFloat), rope,
                          model.config);
  }
  LayerContext Context(LayerWeights* w) {
    return LayerContext{.layer = 1,
                        .layers = model.config.num_hidden_layers,
                        .config = &model.config,
                        .weights = w,
                        .inputs = &inputs,
                        .rope = &rope,
                        .batch = 4,
                        .device = at::Device(at::kCPU),
                        .dtype = at::kFloat,
                        .pattern = &pattern,
                        .timer = &timer};
  }
};

// Checks one rebuilt block against the oracle; returns Σ k.
int64_t CheckBlockAgainstOracle(const BarberLayer& layer, const std::vector<Proj>& projs,
                                const LayerWeights& init, const LayerWeights& rebuilt,
                                const LayerWeights& dense, v1::BarberGranularity g, double tau) {
  std::vector<std::array<int64_t, 2>> shapes;
  for (Proj p : projs) shapes.push_back({dense[p].size(0), dense[p].size(1)});
  const auto& scores = layer.last_scores();
  const auto& before = layer.last_masks_before();
  EXPECT_EQ(scores.size(), projs.size());
  std::vector<std::vector<float>> s;
  std::vector<std::vector<bool>> m0, m1;
  for (size_t i = 0; i < projs.size(); ++i) {
    EXPECT_TRUE(at::equal(before[i], init[projs[i]].eq(0)));  // the init's mask
    s.push_back(testing::ToFloatVector(scores[i]));
    m0.push_back(testing::ToBoolVector(init[projs[i]].eq(0)));
    m1.push_back(testing::ToBoolVector(rebuilt[projs[i]].eq(0)));
    // Every kept weight has its dense value (wanda init).
    EXPECT_TRUE(NonzerosEqualDense(rebuilt[projs[i]], dense[projs[i]]));
  }
  int64_t total_k = 0;
  for (const testing::NaiveGroup& group : testing::NaiveGroups(shapes, g)) {
    std::vector<float> gs;
    std::vector<bool> gb, ga;
    for (auto [mi, f] : group) {
      gs.push_back(s[mi][f]);
      gb.push_back(m0[mi][f]);
      ga.push_back(m1[mi][f]);
    }
    testing::NaiveGroupResult expect = testing::NaiveRebuildGroup(gs, gb, tau);
    EXPECT_EQ(ga, expect.pruned);
    int64_t regrown = 0, dropped = 0;
    double kept_before = 0, kept_after = 0;
    for (size_t i = 0; i < gs.size(); ++i) {
      regrown += gb[i] && !ga[i];
      dropped += !gb[i] && ga[i];
      if (!gb[i]) kept_before += gs[i];
      if (!ga[i]) kept_after += gs[i];
    }
    EXPECT_EQ(regrown, expect.k);
    EXPECT_EQ(dropped, expect.k);
    EXPECT_GE(kept_after, kept_before - 1e-6 * std::abs(kept_before));
    total_k += expect.k;
  }
  return total_k;
}

TEST(BarberLayerTest, RebuildMatchesOracleAndTouchesOnlyItsBlock) {
  LayerFixture fx;
  const std::vector<Proj> attn(kAttentionProjs.begin(), kAttentionProjs.end());
  const std::vector<Proj> mlp(kMlpProjs.begin(), kMlpProjs.end());
  for (v1::BarberGranularity g : {v1::BARBER_GRANULARITY_OUTPUT1, v1::BARBER_GRANULARITY_INPUT1,
                                  v1::BARBER_GRANULARITY_LAYER, v1::BARBER_GRANULARITY_BLOCK}) {
    for (double tau : {0.1, 1.0}) {
      SCOPED_TRACE(EnumName(g) + " tau " + std::to_string(tau));
      const LayerWeights dense = fx.model.layers[1].To(at::kCPU, at::kFloat);
      LayerWeights w = fx.model.layers[1].To(at::kCPU, at::kFloat);
      LayerContext ctx = fx.Context(&w);
      ASSERT_TRUE(MakeWandaPruner()->PruneLayer(ctx).ok());
      const LayerWeights init = w.To(at::kCPU, at::kFloat);
      const v1::BarberOptions options =
          BarberOpts{.init = v1::METHOD_WANDA, .tau = tau, .granularity = g};
      BarberLayer layer(ctx, dense, options, BarberTuning{});

      ASSERT_TRUE(layer.RebuildAttention().ok());
      for (Proj p : mlp) EXPECT_TRUE(BitwiseEqual(w[p], init[p])) << ProjName(p);
      const int64_t k_attn = CheckBlockAgainstOracle(layer, attn, init, w, dense, g, tau);
      EXPECT_EQ(layer.attention().counts.swaps, k_attn);
      const LayerWeights after_attn = w.To(at::kCPU, at::kFloat);

      ASSERT_TRUE(layer.RebuildMlp().ok());
      for (Proj p : attn) EXPECT_TRUE(BitwiseEqual(w[p], after_attn[p])) << ProjName(p);
      const int64_t k_mlp = CheckBlockAgainstOracle(layer, mlp, init, w, dense, g, tau);
      EXPECT_EQ(layer.mlp().counts.swaps, k_mlp);
      if (tau == 1.0) {
        EXPECT_GT(k_attn + k_mlp, 0);
      }
      // The soft check is reported (finite, non-negative).
      for (const BarberBlockRecord* r : {&layer.attention(), &layer.mlp()}) {
        EXPECT_GE(r->mse_before, 0);
        EXPECT_GE(r->mse_after, 0);
      }
      // Group counts: per row (output1), per column (input1), per matrix (layer), per block.
      for (const auto* block : {&attn, &mlp}) {
        int64_t before_total = 0, after_total = 0;
        for (Proj p : *block) {
          before_total += Zeros(init[p]);
          after_total += Zeros(w[p]);
          if (g == v1::BARBER_GRANULARITY_OUTPUT1) {
            EXPECT_TRUE(at::equal(w[p].eq(0).sum(1), init[p].eq(0).sum(1)));
          } else if (g == v1::BARBER_GRANULARITY_INPUT1) {
            EXPECT_TRUE(at::equal(w[p].eq(0).sum(0), init[p].eq(0).sum(0)));
          } else if (g == v1::BARBER_GRANULARITY_LAYER) {
            EXPECT_EQ(Zeros(w[p]), Zeros(init[p]));
          }
        }
        EXPECT_EQ(after_total, before_total);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// §9.1 items 1, 6, 7, 8 over a whole model through the executor.

TEST(Executor, BarberTauZeroIsTheInitMask) {
  const at::Tensor tokens = StoriesWindows(8, 64, 4);
  // Wanda init: Barber with τ = 0 is Wanda, bit for bit, in every layer.
  LlamaModel wanda = Stories(), barber = Stories();
  PruneModel(wanda, tokens, Spec(v1::METHOD_WANDA, {.ratio = 0.5}));
  PruneModel(barber, tokens,
             BarberSpec(v1::METHOD_WANDA, 0.0, v1::BARBER_GRANULARITY_OUTPUT1, {.ratio = 0.5}));
  for (size_t l = 0; l < wanda.layers.size(); ++l) {
    for (Proj p : kAllProjs) EXPECT_TRUE(BitwiseEqual(barber.layers[l][p], wanda.layers[l][p]));
  }
  // SparseGPT init with retain_reconstruction: τ = 0 is SparseGPT itself.
  LlamaModel sgpt = Stories(), retained = Stories(), reset = Stories();
  const LlamaModel dense = Stories();
  PruneModel(sgpt, tokens, Spec(v1::METHOD_SPARSEGPT, {.ratio = 0.5}));
  v1::JobSpec keep =
      BarberSpec(v1::METHOD_SPARSEGPT, 0.0, v1::BARBER_GRANULARITY_BLOCK, {.ratio = 0.5});
  keep.mutable_barber()->set_retain_reconstruction(true);
  PruneModel(retained, tokens, keep);
  for (size_t l = 0; l < sgpt.layers.size(); ++l) {
    for (Proj p : kAllProjs) EXPECT_TRUE(BitwiseEqual(retained.layers[l][p], sgpt.layers[l][p]));
  }
  // Without it (the reference default), layer 0 has SparseGPT's mask with the dense values
  // ("SparseGPT without weight reconstruction", methods.md §5.6).
  PruneModel(reset, tokens,
             BarberSpec(v1::METHOD_SPARSEGPT, 0.0, v1::BARBER_GRANULARITY_BLOCK, {.ratio = 0.5}));
  for (Proj p : kAllProjs) {
    EXPECT_TRUE(at::equal(reset.layers[0][p].eq(0), sgpt.layers[0][p].eq(0)));
    EXPECT_TRUE(NonzerosEqualDense(reset.layers[0][p], dense.layers[0][p]));
  }
}

TEST(Executor, BarberKeepsEarlierLayersCountsAndMostlyLowersBlockError) {
  const at::Tensor tokens = StoriesWindows(16, 64, 5);
  const LlamaModel dense = Stories();
  struct Case {
    v1::Method init;
    v1::BarberGranularity g;
  };
  for (const Case& c : {Case{v1::METHOD_WANDA, v1::BARBER_GRANULARITY_OUTPUT1},
                        Case{v1::METHOD_MAGNITUDE, v1::BARBER_GRANULARITY_BLOCK},
                        Case{v1::METHOD_WANDA, v1::BARBER_GRANULARITY_LAYER}}) {
    SCOPED_TRACE(EnumName(c.init) + " " + EnumName(c.g));
    LlamaModel model = Stories();
    // Snapshot every layer's masks when it is written back; later layers must not change them.
    std::vector<std::array<at::Tensor, 7>> masks;
    bool earlier_changed = false;
    LayerProgress progress = [&](int64_t step, int64_t steps) {
      const int64_t layers = steps / 2;  // the initializer's pass over the model, then Barber's
      if (step < layers) return true;
      const int64_t layer = step - layers;
      for (size_t l = 0; l < masks.size(); ++l) {
        for (Proj p : kAllProjs) {
          earlier_changed |= !at::equal(masks[l][static_cast<size_t>(p)], model.layers[l][p].eq(0));
        }
      }
      std::array<at::Tensor, 7> m;
      for (Proj p : kAllProjs) m[static_cast<size_t>(p)] = model.layers[layer][p].eq(0);
      masks.push_back(m);
      return true;
    };
    Pruned pr = PruneModel(model, tokens, BarberSpec(c.init, 0.1, c.g, {.ratio = 0.5}), progress);
    EXPECT_FALSE(earlier_changed);
    ASSERT_EQ(masks.size(), dense.layers.size());
    int64_t zeros = 0;
    for (size_t l = 0; l < model.layers.size(); ++l) {
      for (const auto& block : {std::vector<Proj>(kAttentionProjs.begin(), kAttentionProjs.end()),
                                std::vector<Proj>(kMlpProjs.begin(), kMlpProjs.end())}) {
        int64_t block_zeros = 0, block_init = 0;
        for (Proj p : block) {
          const at::Tensor& w = model.layers[l][p];
          EXPECT_TRUE(NonzerosEqualDense(w, dense.layers[l][p]));
          if (c.g == v1::BARBER_GRANULARITY_OUTPUT1) {  // Wanda's exact per-row count survives
            EXPECT_TRUE(at::all(w.eq(0).sum(1).eq(w.size(1) / 2)).item<bool>());
          }
          if (c.g != v1::BARBER_GRANULARITY_BLOCK) {
            EXPECT_EQ(Zeros(w), w.numel() / 2);
          }
          block_zeros += Zeros(w);
          block_init += w.numel() / 2;  // magnitude: exactly numel/2 per matrix before Barber
        }
        EXPECT_EQ(block_zeros, block_init);
        zeros += block_zeros;
      }
    }
    const v1::BarberReport& b = pr.report.barber();
    EXPECT_GT(b.total().swaps(), 0);
    EXPECT_EQ(b.layers_size(), static_cast<int>(dense.layers.size()));
    // Soft check (§9.1 item 8): where the mask changed, the block error mostly went down.
    EXPECT_EQ(b.blocks_mse_measured(), 2 * static_cast<int64_t>(dense.layers.size()));
    int64_t changed = 0, lowered = 0;
    for (const v1::BarberLayer& layer : b.layers()) {
      for (const v1::BarberBlock* r : {&layer.attention(), &layer.mlp()}) {
        ASSERT_TRUE(r->has_mse_before() && r->has_mse_after());
        if (r->counts().swaps() == 0) {
          EXPECT_EQ(r->mse_after(), r->mse_before());
          continue;
        }
        ++changed;
        lowered += r->mse_after() < r->mse_before();
      }
    }
    EXPECT_GE(changed, 3) << b.DebugString();
    EXPECT_GE(2 * lowered, changed) << b.DebugString();
  }
}

}  // namespace
}  // namespace prunerd
