// TransAct tests. Oracles:
//  - methods.md §6.5 (schedule table), §9.1 items 9-12 (shapes, parameter count, index
//    invariants, function preservation, schedule) and §9.2 (f), (g) (hand-checked examples);
//  - hand-derived GQA selections and target roundings (worked out in the comments);
//  - scores: a naive per-sequence full forward through the engine's dense DecoderLayer with
//    taps accumulated in double (no batching, no layer streaming);
//  - function preservation: the dense model with the removed input channels of o_proj and
//    down_proj zeroed must give the sliced model's logits: exactly in fp64; in fp32 within 1e-5
//    with every sum in a fixed order (OrderedLogits), and through the engine's BLAS forward
//    within 1e-5 or twice the dense fp32 forward's own error (see PruneAndCheck); for a random
//    MHA model, stories260K (GQA 8/4) and prose16M (GQA 6/2), in both GQA modes;
//  - the written model reopened by Checkpoint::Open gives the same logits.
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/api/engine.h"
#include "core/api/proto_json.h"
#include "core/api/report.h"
#include "core/api/testing/spec_builders.h"
#include "core/engine/model_export.h"
#include "core/engine/torch_util.h"
#include "core/io/remove_tree.h"
#include "core/methods/transact.h"
#include "core/model/checkpoint.h"
#include "core/model/hf_writer.h"
#include "core/testing/test_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using json = nlohmann::json;

// ---- Pure functions ----------------------------------------------------------------------

TEST(TransActScheduleTest, MethodsTableAndExampleG) {
  // methods.md §6.5, LLaMA-2-7B, K = 8, head-level (unit 128): README example -a 768 -f 1536.
  EXPECT_THAT(DimSchedule(4096, 768, 8, 128), ElementsAre(29 * 128, 26 * 128, 23 * 128, 20 * 128,
                                                          17 * 128, 14 * 128, 10 * 128, 6 * 128));
  EXPECT_THAT(DimSchedule(11008, 1536, 8, 1),
              ElementsAre(9824, 8640, 7456, 6272, 5088, 3904, 2720, 1536));
  // Script defaults 2048 / 3072.
  EXPECT_THAT(DimSchedule(4096, 2048, 8, 128), ElementsAre(30 * 128, 28 * 128, 26 * 128, 24 * 128,
                                                           22 * 128, 20 * 128, 18 * 128, 16 * 128));
  EXPECT_THAT(DimSchedule(11008, 3072, 8, 1),
              ElementsAre(10016, 9024, 8032, 7040, 6048, 5056, 4064, 3072));
  // §9.2 (g): 4096 -> 768 over 8 shots; the MLP in steps of 1184.
  EXPECT_THAT(DimSchedule(4096, 768, 8, 128),
              ElementsAre(3712, 3328, 2944, 2560, 2176, 1792, 1280, 768));
  std::vector<int64_t> mlp = DimSchedule(11008, 1536, 8, 1);
  int64_t prev = 11008;
  for (int64_t d : mlp) {
    EXPECT_EQ(prev - d, 1184);
    prev = d;
  }
  // One step by hand: shot 1 of 8 from 4096 to 768: 4096 - floor(3328 / 8) = 3680.
  EXPECT_EQ(ScheduleStep(4096, 768, 1, 8), 3680);
  EXPECT_EQ(ScheduleStep(768, 768, 3, 8), 768);
  // K = 1 is one-shot.
  EXPECT_THAT(DimSchedule(4096, 768, 1, 128), ElementsAre(768));
}

TEST(TransActSelectionTest, ExampleFAndGqaByHand) {
  // §9.2 (f): d_h = 4, α = 2.5; H = (1 + 2.5, 1 + 10, 2 + 5) = (3.5, 11, 7).
  std::vector<double> h = HeadScores({1, 1, 1, 1, 0, 0, 0, 4, 2, 2, 2, 2}, 4);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_DOUBLE_EQ(h[0], 3.5);
  EXPECT_DOUBLE_EQ(h[1], 11.0);
  EXPECT_DOUBLE_EQ(h[2], 7.0);
  std::vector<int64_t> keep = TopKSorted(h, 2);
  EXPECT_THAT(keep, ElementsAre(1, 2));
  EXPECT_THAT(HeadChannels(keep, 4), ElementsAre(4, 5, 6, 7, 8, 9, 10, 11));
  // MHA (3 heads, 3 KV heads): both modes are the paper's selection.
  for (v1::GqaMode mode : {v1::GQA_MODE_KV_GROUPS, v1::GQA_MODE_QUERY_HEADS}) {
    HeadSelection s = SelectHeads(h, 3, 2, mode);
    EXPECT_THAT(s.q_heads, ElementsAre(1, 2));
    EXPECT_THAT(s.kv_heads, ElementsAre(1, 2));
  }
  // A channel whose activations over all tokens are (3, 4) scores sqrt(9 + 16) = 5; the
  // accumulation runs over every leading dim ([B=2, T=1, C=2] here) in fp32.
  at::Tensor acc = at::zeros({2}, at::kFloat);
  AccumulateChannelSquares(acc, at::tensor({3.0f, 1.0f, 4.0f, 0.0f}).to(at::kHalf).view({2, 1, 2}));
  EXPECT_FLOAT_EQ(acc.sqrt()[0].item<float>(), 5.0f);
  EXPECT_FLOAT_EQ(acc.sqrt()[1].item<float>(), 1.0f);

  // GQA, 6 query heads over 2 KV heads (3 per group), H = (1, 5, 1 | 3, 3, 3).
  const std::vector<double> g = {1, 5, 1, 3, 3, 3};
  // kv_groups: group scores 7 and 9; keeping 3 query heads = 1 group keeps group 1.
  HeadSelection kvg = SelectHeads(g, 2, 3, v1::GQA_MODE_KV_GROUPS);
  EXPECT_THAT(kvg.q_heads, ElementsAre(3, 4, 5));
  EXPECT_THAT(kvg.kv_heads, ElementsAre(1));
  // query_heads: 4 heads = 2 per group; group 0 keeps 1 (score 5) and 0 (tie 1 = 1, lower
  // index wins); group 1 ties everywhere: 3 and 4. Every KV head stays.
  HeadSelection qh = SelectHeads(g, 2, 4, v1::GQA_MODE_QUERY_HEADS);
  EXPECT_THAT(qh.q_heads, ElementsAre(0, 1, 3, 4));
  EXPECT_THAT(qh.kv_heads, ElementsAre(0, 1));
  // Units: a group of 3 heads, one head per group (2), one head for MHA.
  EXPECT_EQ(AttnUnitHeads(6, 2, v1::GQA_MODE_KV_GROUPS), 3);
  EXPECT_EQ(AttnUnitHeads(6, 2, v1::GQA_MODE_QUERY_HEADS), 2);
  EXPECT_EQ(AttnUnitHeads(32, 32, v1::GQA_MODE_QUERY_HEADS), 1);
  // Top-k ties and ordering.
  EXPECT_THAT(TopKSorted({2, 9, 2, 9, 1}, 3), ElementsAre(0, 1, 3));
}

LlamaConfig Llama2_7B() {
  LlamaConfig c;
  c.vocab_size = 32000;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 32;
  c.head_dim = 128;
  return c;
}

TEST(TransActPlanTest, TargetsRoundUpToWholeUnits) {
  // §9.1 item 9: LLaMA-2-7B at MHA 768, MLP 1536: 6 heads = 6 KV heads of 128,
  // 1,269,043,200 parameters, KV cache 2 x 768 per token per layer; K = 8 shots as §6.5.
  LlamaConfig c = Llama2_7B();
  auto plan = PlanTransAct(c, TransActOpts{.attn_dim = 768, .mlp_dim = 1536, .shots = 8});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 8u);
  const int64_t heads[] = {29, 26, 23, 20, 17, 14, 10, 6};
  for (int s = 0; s < 8; ++s) {
    EXPECT_EQ((*plan)[s].heads, heads[s]);
    EXPECT_EQ((*plan)[s].kv_heads, heads[s]);  // MHA: n_kv' = n_h'
  }
  LlamaConfig p = c;
  p.num_attention_heads = plan->back().heads;
  p.num_key_value_heads = plan->back().kv_heads;
  p.intermediate_size = plan->back().intermediate;
  EXPECT_EQ(p.NumParameters(), 1269043200);
  EXPECT_EQ(2 * p.kv_dim(), 2 * 768);
  EXPECT_EQ(ProjShape(p, Proj::kQ), (std::array<int64_t, 2>{768, 4096}));
  EXPECT_EQ(ProjShape(p, Proj::kO), (std::array<int64_t, 2>{4096, 768}));
  EXPECT_EQ(ProjShape(p, Proj::kDown), (std::array<int64_t, 2>{4096, 1536}));

  // prose16M: 6 heads of 64 (q_dim 384), 2 KV heads, d_ff 1024.
  LlamaConfig prose = c;
  prose.num_attention_heads = 6;
  prose.num_key_value_heads = 2;
  prose.head_dim = 64;
  prose.intermediate_size = 1024;
  auto last = [](const absl::StatusOr<std::vector<TransActDims>>& p) {
    EXPECT_TRUE(p.ok()) << p.status();
    return p->back();
  };
  // 25%: 384 - 96 = 288 dims; kv_groups units of 192 -> ceil(1.5) = 2 groups (nothing
  // removed); MLP 1024 - 256 = 768.
  TransActDims d = last(PlanTransAct(prose, TransActOpts{.attn_ratio = 0.25, .mlp_ratio = 0.25}));
  EXPECT_EQ(d.heads, 6);
  EXPECT_EQ(d.kv_heads, 2);
  EXPECT_EQ(d.intermediate, 768);
  // 50%: 192 dims = 1 group (3 heads, 1 KV head); MLP 512.
  d = last(PlanTransAct(prose, TransActOpts{.attn_ratio = 0.5, .mlp_ratio = 0.5}));
  EXPECT_EQ(d.heads, 3);
  EXPECT_EQ(d.kv_heads, 1);
  EXPECT_EQ(d.intermediate, 512);
  // query_heads: units of 2 heads (128 dims); 50% -> ceil(192 / 128) = 2 per group = 4 heads.
  d = last(PlanTransAct(prose, TransActOpts{.attn_ratio = 0.5, .gqa_mode = v1::GQA_MODE_QUERY_HEADS}));
  EXPECT_EQ(d.heads, 4);
  EXPECT_EQ(d.kv_heads, 2);
  d = last(PlanTransAct(prose, TransActOpts{.attn_ratio = 0.25, .gqa_mode = v1::GQA_MODE_QUERY_HEADS}));
  EXPECT_EQ(d.heads, 6);
  // Explicit dims: attn_dim 100 rounds up to one group; at least one unit always stays.
  d = last(PlanTransAct(prose, TransActOpts{.attn_dim = 100, .mlp_dim = 7}));
  EXPECT_EQ(d.heads, 3);
  EXPECT_EQ(d.intermediate, 7);
  // stories260K: 8 heads of 8, 4 KV heads, d_ff 172. kv_groups units of 2 heads (16 dims):
  // 25% -> 48 dims = 3 groups; MLP 172 - floor(43) = 129.
  LlamaConfig st = prose;
  st.num_attention_heads = 8;
  st.num_key_value_heads = 4;
  st.head_dim = 8;
  st.intermediate_size = 172;
  d = last(PlanTransAct(st, TransActOpts{.attn_ratio = 0.25, .mlp_ratio = 0.25}));
  EXPECT_EQ(d.heads, 6);
  EXPECT_EQ(d.kv_heads, 3);
  EXPECT_EQ(d.intermediate, 129);
  d = last(PlanTransAct(st, TransActOpts{.attn_ratio = 0.5, .mlp_ratio = 0.5}));
  EXPECT_EQ(d.heads, 4);
  EXPECT_EQ(d.kv_heads, 2);
  EXPECT_EQ(d.intermediate, 86);
  // Too large explicit dims are errors naming the field.
  auto bad = PlanTransAct(prose, TransActOpts{.attn_dim = 385});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("transact.attn_dim"));
  bad = PlanTransAct(prose, TransActOpts{.mlp_dim = 1025});
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("transact.mlp_dim"));
}

// ---- Models ------------------------------------------------------------------------------

std::shared_ptr<const Checkpoint> OpenCkpt(const std::string& path) {
  auto c = Checkpoint::Open(path);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::shared_ptr<const Checkpoint>(std::move(*c));
}

LlamaModel Load(const std::string& path) {
  auto m = LoadLlama(OpenCkpt(path));
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

std::string Stories() { return TestDataPath("models/stories260K/stories260K.bin"); }
std::string Prose() { return TestDataPath("models/prose16M"); }

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/transact_" + name;
  (void)RemoveTree(dir);
  return dir;
}

// A random MHA LLaMA (8 heads of 4 = 8 KV heads, hidden 32, d_ff 48, 2 layers, untied), fp32,
// written as a Hugging Face directory so it loads like any checkpoint.
std::string RandomMhaModel() {
  const std::string dir = FreshDir("mha_random");
  LlamaConfig c;
  c.vocab_size = 96;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.head_dim = 4;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  at::manual_seed(1234);
  HfModelWriter w(dir, c, "", {});
  std::vector<at::Tensor> keep;  // views must outlive Add
  auto add = [&](const std::string& name, at::Tensor t) {
    keep.push_back(t.contiguous());
    ASSERT_TRUE(w.Add(name, ViewOf(keep.back())).ok());
  };
  add(std::string(kEmbedName), at::randn({c.vocab_size, c.hidden_size}));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    add(InputNormName(l), 1 + 0.2 * at::randn({c.hidden_size}));
    add(PostAttnNormName(l), 1 + 0.2 * at::randn({c.hidden_size}));
    for (Proj p : kAllProjs) {
      std::array<int64_t, 2> s = ProjShape(c, p);
      add(ProjWeightName(l, p), at::randn({s[0], s[1]}) / std::sqrt(double(s[1])));
    }
  }
  add(std::string(kFinalNormName), 1 + 0.2 * at::randn({c.hidden_size}));
  add(std::string(kLmHeadName), at::randn({c.vocab_size, c.hidden_size}));
  absl::Status s = w.Finish();
  EXPECT_TRUE(s.ok()) << s;
  return dir;
}

at::Tensor RandomTokens(int64_t n, int64_t t, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(3, vocab, {n, t}, at::kLong);
}

std::vector<int64_t> Ints(const json& j) { return j.get<std::vector<int64_t>>(); }

// The report as JSON, so the checks read it by name.
json AsJson(const v1::TransActReport& r) { return json::parse(ProtoToJson(r)); }

// The dense model with the channels outside `kept` zeroed in o_proj's and down_proj's inputs
// (columns of W_o and W_down), fp32. Kept indices come from the report, in dense numbering.
LlamaModel ZeroedDense(const LlamaModel& dense, const json& details) {
  LlamaModel z = dense;
  const int64_t hd = dense.config.head_dim;
  for (int64_t l = 0; l < dense.config.num_hidden_layers; ++l) {
    const json& lj = details["layers"][l];
    at::Tensor o = dense.layers[l][Proj::kO].to(at::kFloat).clone();
    at::Tensor down = dense.layers[l][Proj::kDown].to(at::kFloat).clone();
    at::Tensor keep_o = at::zeros({o.size(1)}, at::kBool);
    for (int64_t h : Ints(lj["q_heads"])) keep_o.narrow(0, h * hd, hd).fill_(true);
    at::Tensor keep_d = at::zeros({down.size(1)}, at::kBool);
    keep_d.index_fill_(0, at::tensor(Ints(lj["mlp_channels"]), at::kLong), true);
    o.index_fill_(1, at::nonzero(keep_o.logical_not()).view(-1), 0.0);
    down.index_fill_(1, at::nonzero(keep_d.logical_not()).view(-1), 0.0);
    z.layers[l][Proj::kO] = o;
    z.layers[l][Proj::kDown] = down;
  }
  return z;
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// ---- A fixed-order forward ----------------------------------------------------------------
// BLAS sums a dot product in blocks and vector lanes whose split depends on the length, so a
// GEMM over the sliced inputs and one over the zero-padded inputs round differently (CPU, fp32,
// 384 inputs half zeroed: up to 2.7e-5 on outputs of ~57) although the terms are the same. This
// forward sums every linear layer term by term in index order, one rounding per term, and runs
// attention head by head; a zero term then leaves a sum bit for bit as it was, so any difference
// between the sliced model and the zeroed dense one is a difference of function, not of
// summation order. Checked against the engine's forward in fp64. No BLAS call: q·kᵀ and p·v
// are summed the same way; SiLU, the one elementwise op whose rounding depends on an element's
// position, goes through fp64.

// x [..., K] · wᵀ, w [M, K]: acc += x_k · w_k for k = 0, 1, ..., K - 1.
at::Tensor OrderedLinear(const at::Tensor& x, const at::Tensor& w) {
  const at::Tensor x2 = x.reshape({-1, x.size(-1)});
  at::Tensor acc = at::zeros({x2.size(0), w.size(0)}, x.options());
  for (int64_t k = 0; k < w.size(1); ++k) {
    // Product and sum as two ops: no fused multiply-add, whose use could differ between a
    // vector body and its scalar tail, i.e. with an output's position.
    acc.add_(x2.narrow(1, k, 1) * w.narrow(1, k, 1).t());
  }
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = w.size(0);
  return acc.view(shape);
}

at::Tensor OrderedLogits(const LlamaModel& m, const at::Tensor& tokens, at::ScalarType dt) {
  c10::InferenceMode guard;
  const LlamaConfig& c = m.config;
  const int64_t b = tokens.size(0), t = tokens.size(1), d = c.head_dim;
  const RopeCache rope = MakeRope(c, t, at::kCPU, dt);
  const at::Tensor causal = at::ones({t, t}, at::kBool).triu(1);
  at::Tensor x = Embed(m, tokens, at::kCPU, dt);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights w = m.layers[l].To(at::kCPU, dt);
    const int64_t h = w[Proj::kQ].size(0) / d, kv = w[Proj::kK].size(0) / d;
    const at::Tensor xn = RmsNorm(x, w.input_norm, c.rms_norm_eps);
    const at::Tensor q = RotaryEmbed(OrderedLinear(xn, w[Proj::kQ]).view({b, t, h, d}), rope.cos,
                                     rope.sin);
    const at::Tensor k = RotaryEmbed(OrderedLinear(xn, w[Proj::kK]).view({b, t, kv, d}),
                                     rope.cos, rope.sin);
    const at::Tensor v = OrderedLinear(xn, w[Proj::kV]).view({b, t, kv, d});
    at::Tensor ctx = at::empty({b, t, h, d}, x.options());
    for (int64_t s = 0; s < b; ++s) {
      for (int64_t i = 0; i < h; ++i) {
        const int64_t g = i / (h / kv);
        const at::Tensor qs = q[s].select(1, i), ks = k[s].select(1, g), vs = v[s].select(1, g);
        // q·kᵀ and p·v in fixed order too: a BLAS call's order can depend on the operands'
        // strides, which differ with the number of heads (seen with the pip wheel's BLAS).
        at::Tensor scores = OrderedLinear(qs, ks) / std::sqrt(static_cast<double>(d));
        scores = scores.masked_fill(causal, -std::numeric_limits<double>::infinity());
        ctx[s].select(1, i).copy_(OrderedLinear(at::softmax(scores, -1), vs.t()));
      }
    }
    const at::Tensor hh = x + OrderedLinear(ctx.view({b, t, h * d}), w[Proj::kO]);
    const at::Tensor hn = RmsNorm(hh, w.post_norm, c.rms_norm_eps);
    // SiLU through fp64, rounded once: ATen's vector and scalar exp differ in the last bit, and
    // which one an element meets depends on its position in the tensor (seen with the pip
    // wheel), which slicing changes. In fp64 both are far inside one fp32 rounding.
    const at::Tensor act = at::silu(OrderedLinear(hn, w[Proj::kGate]).to(at::kDouble)).to(dt) *
                           OrderedLinear(hn, w[Proj::kUp]);
    x = hh + OrderedLinear(act, w[Proj::kDown]);
  }
  const at::Tensor xn = RmsNorm(x, m.final_norm.to(dt), c.rms_norm_eps);
  return OrderedLinear(xn, m.lm_head.to(dt));
}

// Index invariants (§9.1 item 10) and the slicing itself: every sliced tensor equals the dense
// rows/columns at the reported indices, bit for bit, in the storage dtype; norms, embeddings
// and lm_head untouched; the config matches the tensors.
void CheckSlicedModel(const LlamaModel& dense, const LlamaModel& pruned, const json& details,
                      v1::GqaMode mode) {
  const LlamaConfig& dc = dense.config;
  const LlamaConfig& pc = pruned.config;
  const int64_t hd = dc.head_dim, rep = dc.num_queries_per_kv();
  EXPECT_EQ(pc.head_dim, hd);
  EXPECT_EQ(pc.hidden_size, dc.hidden_size);
  EXPECT_TRUE(pc.Validate().ok());
  EXPECT_TRUE(at::equal(pruned.embed, dense.embed));
  EXPECT_TRUE(at::equal(pruned.lm_head, dense.lm_head));
  EXPECT_TRUE(at::equal(pruned.final_norm, dense.final_norm));
  for (int64_t l = 0; l < dc.num_hidden_layers; ++l) {
    SCOPED_TRACE(absl::StrCat("layer ", l));
    const json& lj = details["layers"][l];
    std::vector<int64_t> q = Ints(lj["q_heads"]), kv = Ints(lj["kv_heads"]);
    std::vector<int64_t> mlp = Ints(lj["mlp_channels"]);
    ASSERT_EQ(int64_t(q.size()), pc.num_attention_heads);
    ASSERT_EQ(int64_t(kv.size()), pc.num_key_value_heads);
    ASSERT_EQ(int64_t(mlp.size()), pc.intermediate_size);
    for (const auto* v : {&q, &kv, &mlp}) {
      EXPECT_TRUE(std::is_sorted(v->begin(), v->end()));
      EXPECT_EQ(std::set<int64_t>(v->begin(), v->end()).size(), v->size());  // unique
    }
    // Kept query heads must read the kept KV heads in the same order of groups.
    if (rep > 1 && mode == v1::GQA_MODE_KV_GROUPS) {
      ASSERT_EQ(q.size(), kv.size() * rep);
      for (size_t i = 0; i < q.size(); ++i) EXPECT_EQ(q[i] / rep, kv[i / rep]);
    } else if (rep > 1) {
      EXPECT_EQ(int64_t(kv.size()), dc.num_key_value_heads);
      std::vector<int64_t> per_group(kv.size(), 0);
      for (int64_t h : q) ++per_group[h / rep];
      for (int64_t n : per_group) EXPECT_EQ(n, pc.num_queries_per_kv());
    } else {
      EXPECT_EQ(q, kv);
    }
    const LayerWeights& dw = dense.layers[l];
    const LayerWeights& pw = pruned.layers[l];
    at::Tensor qi = at::tensor(HeadChannels(q, hd), at::kLong);
    at::Tensor kvi = at::tensor(HeadChannels(kv, hd), at::kLong);
    at::Tensor mi = at::tensor(mlp, at::kLong);
    EXPECT_TRUE(at::equal(pw[Proj::kQ], dw[Proj::kQ].index_select(0, qi)));
    EXPECT_TRUE(at::equal(pw[Proj::kK], dw[Proj::kK].index_select(0, kvi)));
    EXPECT_TRUE(at::equal(pw[Proj::kV], dw[Proj::kV].index_select(0, kvi)));
    EXPECT_TRUE(at::equal(pw[Proj::kO], dw[Proj::kO].index_select(1, qi)));
    EXPECT_TRUE(at::equal(pw[Proj::kGate], dw[Proj::kGate].index_select(0, mi)));
    EXPECT_TRUE(at::equal(pw[Proj::kUp], dw[Proj::kUp].index_select(0, mi)));
    EXPECT_TRUE(at::equal(pw[Proj::kDown], dw[Proj::kDown].index_select(1, mi)));
    EXPECT_TRUE(at::equal(pw.input_norm, dw.input_norm));
    EXPECT_TRUE(at::equal(pw.post_norm, dw.post_norm));
  }
}

struct Case {
  std::string name;
  std::string path;
  TransActOpts options;
  int64_t heads, kv_heads, intermediate;  // expected, worked out by hand
};

// Prunes `c`, checks the slicing invariants and function preservation.
json PruneAndCheck(const Case& c, const at::Tensor& calib, const at::Tensor& probe) {
  SCOPED_TRACE(c.name);
  LlamaModel dense = Load(c.path);
  LlamaModel pruned = Load(c.path);
  auto details = TransActPrune(pruned, calib, c.options, ForwardOptions{.batch_size = 3}, nullptr);
  EXPECT_TRUE(details.ok()) << details.status();
  if (!details.ok()) return json();
  EXPECT_EQ(pruned.config.num_attention_heads, c.heads);
  EXPECT_EQ(pruned.config.num_key_value_heads, c.kv_heads);
  EXPECT_EQ(pruned.config.intermediate_size, c.intermediate);
  const json report = AsJson(*details);
  CheckSlicedModel(dense, pruned, report, c.options.gqa_mode);
  // §9.1 item 11: function preservation. In fp64 the sliced model and the zeroed dense model
  // agree exactly (the removed channels only ever add exact zeros). In fp32 they differ by
  // summation order (o_proj/down_proj reduce over fewer inputs): at most 1e-5, or, where the
  // fp32 forward itself is less accurate than that (logits ~20 over 5-8 layers), at most twice
  // the dense model's own fp32-vs-fp64 error on the same probe.
  const ForwardOptions f64{.dtype = at::kDouble};
  const LlamaModel zeroed_model = ZeroedDense(dense, report);
  at::Tensor sliced = Logits(pruned, probe, ForwardOptions{});
  at::Tensor zeroed = Logits(zeroed_model, probe, ForwardOptions{});
  at::Tensor dense32 = Logits(dense, probe, ForwardOptions{});
  const double d64 = MaxAbsDiff(Logits(pruned, probe, f64), Logits(zeroed_model, probe, f64));
  const double d32 = MaxAbsDiff(sliced, zeroed);
  const double fp32_noise = MaxAbsDiff(dense32, Logits(dense, probe, f64));
  EXPECT_LE(d64, 1e-12);
  EXPECT_LE(d32, std::max(1e-5, 2 * fp32_noise));
  // In fp32 with every sum in a fixed order (OrderedLogits): the bound, 1e-5. The
  // ordered forward itself must be the engine's function (fp64, up to rounding).
  const double ordered32 = MaxAbsDiff(OrderedLogits(pruned, probe, at::kFloat),
                                      OrderedLogits(zeroed_model, probe, at::kFloat));
  // (Logits rounds its fp64 result to fp32 once: half a step of fp32 at most.)
  const at::Tensor ordered64 = OrderedLogits(pruned, probe, at::kDouble);
  const double ordered_vs_engine = MaxAbsDiff(ordered64, Logits(pruned, probe, f64));
  EXPECT_LE(ordered32, 1e-5);
  EXPECT_LE(ordered_vs_engine, std::ldexp(ordered64.abs().max().item<double>(), -24) + 1e-9);
  std::printf(
      "[%s] sliced vs zeroed dense: max|dlogit| fp64 %.3g, fp32 %.3g (fixed-order sums: %.3g); "
      "dense fp32 vs fp64 %.3g; max|logit| %.3g\n",
      c.name.c_str(), d64, d32, ordered32, fp32_noise, sliced.abs().max().item<double>());
  // And pruning changed the function (the zeroing is not vacuous).
  EXPECT_GT(MaxAbsDiff(sliced, dense32), 1e-3);
  return report;
}

TEST(TransActPruneTest, FunctionPreservingOnMhaAndShotsCompose) {
  const std::string path = RandomMhaModel();
  const at::Tensor calib = RandomTokens(5, 24, 96, 7);
  const at::Tensor probe = RandomTokens(2, 20, 96, 8);
  // 8 heads -> 2 (75% removed) and 48 -> 12 over 3 shots: heads 8 - floor(6/3) = 6, then
  // 6 - floor(4/2) = 4, then 2; MLP 48 - 12 = 36, 24, 12.
  Case c{"mha 3 shots", path, {.attn_ratio = 0.75, .mlp_ratio = 0.75, .shots = 3}, 2, 2, 12};
  json d = PruneAndCheck(c, calib, probe);
  ASSERT_EQ(d["shots"].size(), 3u);
  const int64_t heads[] = {6, 4, 2}, mlp[] = {36, 24, 12};
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(d["shots"][s]["attention_heads"].get<int64_t>(), heads[s]);
    EXPECT_EQ(d["shots"][s]["kv_heads"].get<int64_t>(), heads[s]);
    EXPECT_EQ(d["shots"][s]["intermediate_size"].get<int64_t>(), mlp[s]);
  }
  // MHA: both GQA modes are the paper's head pruning and select the same heads.
  c.options.shots = 1;
  c.name = "mha kv_groups";
  json a = PruneAndCheck(c, calib, probe);
  c.options.gqa_mode = v1::GQA_MODE_QUERY_HEADS;
  c.name = "mha query_heads";
  json b = PruneAndCheck(c, calib, probe);
  EXPECT_EQ(a["layers"], b["layers"]);
  EXPECT_EQ(a["pruned"]["kv_cache_values_per_token"].get<int64_t>(), 2 * 2 * 2 * 4);
}

TEST(TransActPruneTest, FunctionPreservingOnGqaModelsInBothModes) {
  const at::Tensor calib_s = RandomTokens(4, 32, 512, 11);
  const at::Tensor probe_s = RandomTokens(2, 24, 512, 12);
  // stories260K: 8 heads / 4 KV of 8, d_ff 172 (hand-derived targets: see the plan test).
  PruneAndCheck(
      {"stories kv_groups 50%", Stories(), {.attn_ratio = 0.5, .mlp_ratio = 0.5}, 4, 2, 86},
      calib_s, probe_s);
  PruneAndCheck(
      {"stories kv_groups 25%", Stories(), {.attn_ratio = 0.25, .mlp_ratio = 0.25}, 6, 3, 129},
      calib_s, probe_s);
  PruneAndCheck({"stories query_heads 50%",
                 Stories(),
                 {.attn_ratio = 0.5, .mlp_ratio = 0.5, .gqa_mode = v1::GQA_MODE_QUERY_HEADS},
                 4,
                 4,
                 86},
                calib_s, probe_s);
  const at::Tensor calib_p = RandomTokens(3, 32, 8192, 13);
  const at::Tensor probe_p = RandomTokens(1, 24, 8192, 14);
  // prose16M (fp16 storage, fp32 compute: slices come from the fp16 host tensors).
  PruneAndCheck({"prose kv_groups 50%", Prose(), {.attn_ratio = 0.5, .mlp_ratio = 0.5}, 3, 1, 512},
                calib_p, probe_p);
  PruneAndCheck({"prose query_heads 50%",
                 Prose(),
                 {.attn_ratio = 0.5, .mlp_ratio = 0.25, .gqa_mode = v1::GQA_MODE_QUERY_HEADS},
                 4,
                 2,
                 768},
                calib_p, probe_p);
}

// Naive scores: each sequence alone, the full dense forward through DecoderLayer, Σa² in
// double on the CPU.
std::vector<std::pair<at::Tensor, at::Tensor>> NaiveScores(const LlamaModel& m,
                                                           const at::Tensor& tokens) {
  c10::InferenceMode guard;
  const LlamaConfig& c = m.config;
  std::vector<std::pair<at::Tensor, at::Tensor>> acc(c.num_hidden_layers);
  RopeCache rope = MakeRope(c, tokens.size(1), at::kCPU, at::kFloat);
  for (int64_t i = 0; i < tokens.size(0); ++i) {
    at::Tensor x = Embed(m, tokens.narrow(0, i, 1), at::kCPU, at::kFloat);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      LayerWeights w = m.layers[l].To(at::kCPU, at::kFloat);
      TapFn tap = [&](Tap t, const at::Tensor& a) {
        if (t != Tap::kAttnCtx && t != Tap::kMlpAct) return;
        at::Tensor sq = a.to(at::kDouble).square().sum(at::IntArrayRef{0, 1});
        at::Tensor& slot = t == Tap::kAttnCtx ? acc[l].first : acc[l].second;
        slot = slot.defined() ? slot + sq : sq;
      };
      x = DecoderLayer(w, x, rope, c, &tap);
    }
  }
  for (auto& [a, b] : acc) {
    a = a.sqrt();
    b = b.sqrt();
  }
  return acc;
}

TEST(TransActScoreTest, BatchedStreamedScoresMatchNaiveForwardAndDriveSelection) {
  LlamaModel m = Load(Stories());
  const at::Tensor tokens = RandomTokens(5, 40, 512, 21);
  // Batches of 2 over 5 windows: the last batch is partial.
  auto scores = ScoreActivations(m, tokens, ForwardOptions{.batch_size = 2}, nullptr);
  ASSERT_TRUE(scores.ok()) << scores.status();
  auto naive = NaiveScores(m, tokens);
  ASSERT_EQ(scores->attn.size(), 5u);
  for (int64_t l = 0; l < 5; ++l) {
    at::Tensor a = naive[l].first.to(at::kFloat), b = naive[l].second.to(at::kFloat);
    ASSERT_EQ(scores->attn[l].numel(), 64);
    ASSERT_EQ(scores->mlp[l].numel(), 172);
    EXPECT_TRUE(at::allclose(scores->attn[l], a, 1e-5, 1e-6)) << "layer " << l;
    EXPECT_TRUE(at::allclose(scores->mlp[l], b, 1e-5, 1e-6)) << "layer " << l;
  }
  // The pruning selects what the naive scores select (kv_groups 50%, MLP 50%): head scores
  // and group sums recomputed here with tensor ops from the naive scores.
  auto details = TransActPrune(m, tokens, TransActOpts{.attn_ratio = 0.5, .mlp_ratio = 0.5},
                               ForwardOptions{.batch_size = 2}, nullptr);
  ASSERT_TRUE(details.ok()) << details.status();
  for (int64_t l = 0; l < 5; ++l) {
    at::Tensor s = naive[l].first.view({8, 8});
    at::Tensor h = s.mean(1) + (10.0 / 8.0) * std::get<0>(s.max(1));
    at::Tensor groups = h.view({4, 2}).sum(1);
    at::Tensor top = std::get<0>(std::get<1>(groups.topk(2)).sort());
    std::vector<int64_t> expect_kv(top.data_ptr<int64_t>(), top.data_ptr<int64_t>() + 2);
    EXPECT_EQ(Ints(AsJson(*details)["layers"][l]["kv_heads"]), expect_kv) << "layer " << l;
    at::Tensor mtop = std::get<0>(std::get<1>(naive[l].second.topk(86)).sort());
    std::vector<int64_t> expect_mlp(mtop.data_ptr<int64_t>(), mtop.data_ptr<int64_t>() + 86);
    EXPECT_EQ(Ints(AsJson(*details)["layers"][l]["mlp_channels"]), expect_mlp) << "layer " << l;
  }
}

TEST(TransActPruneTest, RatioZeroIsANoOpAndCancelLeavesTheModel) {
  LlamaModel dense = Load(Stories());
  LlamaModel m = Load(Stories());
  const at::Tensor tokens = RandomTokens(2, 16, 512, 31);
  auto d =
      TransActPrune(m, tokens, TransActOpts{.attn_ratio = 0.0, .mlp_ratio = 0.0}, ForwardOptions{}, nullptr);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(m.config.NumParameters(), dense.config.NumParameters());
  for (int64_t l = 0; l < 5; ++l) {
    for (Proj p : kAllProjs) EXPECT_TRUE(at::equal(m.layers[l][p], dense.layers[l][p]));
  }
  // Cancel in shot 2 of 2 (after 5 + 2 layers): the first shot is kept, the second is not.
  int calls = 0;
  std::vector<std::pair<int64_t, int64_t>> seen;
  LlamaModel c = Load(Stories());
  auto r = TransActPrune(c, tokens, TransActOpts{.attn_ratio = 0.5, .mlp_ratio = 0.5, .shots = 2},
                         ForwardOptions{}, [&](int64_t layer, int64_t layers) {
                           seen.push_back({layer, layers});
                           return ++calls < 7;
                         });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  ASSERT_EQ(seen.size(), 7u);
  EXPECT_EQ(seen[6], std::make_pair(int64_t{6}, int64_t{10}));
  // Shot 1 of 2 towards 2 groups: 32 - floor(16 / 2) = 24 dims = 3 groups (6 heads); MLP
  // 172 - floor(86 / 2) = 129.
  EXPECT_EQ(c.config.num_attention_heads, 6);
  EXPECT_EQ(c.config.num_key_value_heads, 3);
  EXPECT_EQ(c.config.intermediate_size, 129);
  for (int64_t l = 0; l < 5; ++l) EXPECT_EQ(c.layers[l][Proj::kQ].size(0), 48);
}

TEST(TransActExportTest, WrittenModelReloadsWithTheSameLogits) {
  for (const auto& [name, path] :
       {std::pair<std::string, std::string>{"stories", Stories()}, {"prose", Prose()}}) {
    SCOPED_TRACE(name);
    std::shared_ptr<const Checkpoint> ckpt = OpenCkpt(path);
    auto m = LoadLlama(ckpt);
    ASSERT_TRUE(m.ok());
    const int64_t vocab = m->config.vocab_size;
    auto d = TransActPrune(*m, RandomTokens(3, 32, vocab, 41),
                           TransActOpts{.attn_ratio = 0.5, .mlp_ratio = 0.5}, ForwardOptions{},
                           nullptr);
    ASSERT_TRUE(d.ok()) << d.status();
    const std::string dir = FreshDir("export_" + name);
    absl::Status s = WriteHfModel(*m, ckpt->tokenizer_path(), dir);
    ASSERT_TRUE(s.ok()) << s;
    // config.json carries the new dims explicitly.
    std::ifstream in(dir + "/config.json");
    json cfg = json::parse(in);
    EXPECT_EQ(cfg["num_attention_heads"].get<int64_t>(), m->config.num_attention_heads);
    EXPECT_EQ(cfg["num_key_value_heads"].get<int64_t>(), m->config.num_key_value_heads);
    EXPECT_EQ(cfg["intermediate_size"].get<int64_t>(), m->config.intermediate_size);
    EXPECT_EQ(cfg["head_dim"].get<int64_t>(), ckpt->config().head_dim);
    EXPECT_EQ(cfg["hidden_size"].get<int64_t>(), ckpt->config().hidden_size);
    EXPECT_TRUE(std::filesystem::exists(dir + "/tokenizer.model"));
    LlamaModel back = Load(dir);
    EXPECT_EQ(back.config.NumParameters(), m->config.NumParameters());
    EXPECT_LT(back.config.NumParameters(), ckpt->config().NumParameters());
    const at::Tensor probe = RandomTokens(2, 20, vocab, 42);
    EXPECT_LE(
        MaxAbsDiff(Logits(back, probe, ForwardOptions{}), Logits(*m, probe, ForwardOptions{})),
        1e-6);
  }
}

TEST(TransActJobTest, RunPruneJobReportsStructureAndWritesTheModel) {
  const std::string out = FreshDir("job_out");
  v1::JobSpec spec;
  spec.set_model(Stories());
  spec.set_method(v1::METHOD_TRANSACT);
  *spec.mutable_transact() = TransActOpts{.attn_ratio = 0.5, .mlp_ratio = 0.5};
  const std::string text = TestDataPath("text/tinystories/tinystories_val_head.txt");
  spec.mutable_calibration()->set_uri(text);
  spec.mutable_calibration()->set_num_samples(8);
  spec.mutable_calibration()->set_seqlen(64);
  spec.mutable_evaluation()->set_uri(text);
  spec.mutable_evaluation()->set_seqlen(128);
  spec.mutable_evaluation()->set_max_windows(6);
  auto r = RunPruneJob(spec, RunOptions{.output_dir = out}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::TransActReport& t = r->transact();
  // 260,032 dense parameters (data/README.md). Pruned, per layer: q 32x64, k and v 16x64 each,
  // o 64x32 (4 of 8 heads, 2 of 4 KV heads of 8), gate/up/down 86x64 each, two norms; plus the
  // tied 512x64 embedding and the final norm.
  EXPECT_EQ(t.dense().parameters(), 260032);
  const int64_t attn = 64 * 32 + 2 * 16 * 64 + 64 * 32, mlp = 3 * 86 * 64, norms = 2 * 64;
  EXPECT_EQ(t.pruned().parameters(), 512 * 64 + 5 * (attn + mlp + norms) + 64);
  EXPECT_EQ(t.dense().kv_cache_values_per_token(), 2 * 5 * 32);
  EXPECT_EQ(t.pruned().kv_cache_values_per_token(), 2 * 5 * 16);
  EXPECT_DOUBLE_EQ(r->sparsity(), 1.0 - double(t.pruned().parameters()) / 260032.0);
  const ReportSummary summary = SummarizeReport(*r);
  ASSERT_TRUE(summary.perplexity_dense && summary.perplexity_pruned);
  EXPECT_GT(*summary.perplexity_dense, 1.0);
  EXPECT_GT(*summary.perplexity_pruned, *summary.perplexity_dense);  // no retraining
  EXPECT_TRUE(std::isfinite(*summary.perplexity_pruned));
  EXPECT_EQ(t.pruned().attention_heads(), 4);
  EXPECT_FALSE(r->has_sparsity_detail());  // structured: no per-matrix zeros
  LlamaModel back = Load(out);
  EXPECT_EQ(back.config.num_attention_heads, 4);
  EXPECT_EQ(back.config.num_key_value_heads, 2);
  EXPECT_EQ(back.config.intermediate_size, 86);
}

}  // namespace
}  // namespace prunerd
