// Unit tests of the pruning methods on tiny tensors. Oracles:
//  - the hand examples of methods.md §9.2 (a)–(e), with the numbers written out by hand;
//  - naive re-implementations written here, one group / one column / one sequence at a time
//    (the straightforward loops the vectorised code replaces);
//  - the model's own forward (llama_model.h) differentiated w.r.t. its weights, one sequence
//    at a time, for the batched per-sequence gradient trick.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "core/api/testing/spec_builders.h"
#include "core/engine/llama_model.h"
#include "core/methods/barber_gradients.h"
#include "core/methods/barber_mask_rebuild.h"
#include "core/methods/magnitude_wanda.h"
#include "core/methods/masks.h"
#include "core/methods/naive_rebuild_oracle.h"
#include "core/methods/sparsegpt.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

at::Tensor F(std::vector<float> v, std::vector<int64_t> shape) {
  return at::tensor(v, at::kFloat).view(shape).clone();
}

at::Tensor B(std::vector<int> pruned_positions, int64_t n) {
  at::Tensor m = at::zeros({1, n}, at::kBool);
  for (int p : pruned_positions) m[0][p] = true;
  return m;
}

std::set<int64_t> Positions(const at::Tensor& mask_row) {
  std::set<int64_t> s;
  at::Tensor m = mask_row.reshape({-1});
  for (int64_t i = 0; i < m.numel(); ++i) {
    if (m[i].item<bool>()) s.insert(i);
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// §9.2 (a): Wanda and magnitude on a 2×4 matrix.

TEST(HandExamples, WandaAndMagnitude2x4) {
  at::Tensor w = F({1, -2, 0.5, 4, 3, 0.1, -1, -0.2}, {2, 4});
  at::Tensor x = F({1, 0, 2, 1, 1, 0, 2, -1, 1, 3, 0, 0}, {3, 4});  // x1, x2, x3
  at::Tensor col_sq = x.pow(2).sum(0);                              // (3, 9, 8, 2)
  at::Tensor s = WandaScores(w, col_sq);
  const double r3 = std::sqrt(3.0), r8 = std::sqrt(8.0), r2 = std::sqrt(2.0);
  const double expect[2][4] = {{1 * r3, 2 * 3, 0.5 * r8, 4 * r2},
                               {3 * r3, 0.1 * 3, 1 * r8, 0.2 * r2}};
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(s[i][j].item<float>(), expect[i][j], 1e-5);
  }
  EXPECT_NEAR(s[0][0].item<float>(), 1.732, 1e-3);
  EXPECT_NEAR(s[1][3].item<float>(), 0.283, 1e-3);
  at::Tensor m = WandaMask(s, SparsityPattern{.ratio = 0.5});
  EXPECT_EQ(Positions(m[0]), (std::set<int64_t>{0, 2}));
  EXPECT_EQ(Positions(m[1]), (std::set<int64_t>{1, 3}));

  // Magnitude, per matrix: ours prunes exactly floor(8·0.5) = 4: 0.1, 0.2, 0.5 and the first
  // (by flat index) of the two 1.0s, W[0][0].
  at::Tensor mm = MagnitudeMask(w, SparsityPattern{.ratio = 0.5});
  EXPECT_EQ(Positions(mm), (std::set<int64_t>{0, 2, 5, 7}));
  // The reference's rule, |W| <= sorted(|W|)[int(8·0.5)] = 1, prunes 5 (the tie at 1.0):
  // documented difference (masks.h).
  at::Tensor sorted = std::get<0>(at::sort(w.abs().reshape({-1})));
  EXPECT_FLOAT_EQ(sorted[4].item<float>(), 1.0f);
  EXPECT_EQ(w.abs().le(sorted[4]).sum().item<int64_t>(), 5);
}

// ---------------------------------------------------------------------------------------
// §9.2 (b): the Barber score of a one-matrix block.

TEST(HandExamples, BarberScoreOneMatrixBlock) {
  at::Tensor w_dense = F({2, -1}, {1, 2});
  at::Tensor w_sparse = F({2, 0}, {1, 2});
  // Two sequences of one token each: x = (1, 1) and (0, 2).
  at::Tensor x = F({1, 1, 0, 2}, {2, 1, 2});
  at::Tensor y_sparse = at::linear(x, w_sparse);  // (2, 0)
  at::Tensor acc = at::zeros({1, 2});
  const double sse = LinearBlockError(w_dense, x, y_sparse, &acc);
  // Dense outputs (1, −2): (2−1)² + (0+2)² = 5.
  EXPECT_NEAR(sse, 5.0, 1e-6);
  // G1 = (−2, −2), G2 = (0, −8): Σ G² = (4, 68); mean (2, 34).
  EXPECT_NEAR(acc[0][0].item<float>(), 4.0, 1e-5);
  EXPECT_NEAR(acc[0][1].item<float>(), 68.0, 1e-4);
  at::Tensor s = BarberScores(w_dense, acc, 2, v1::BARBER_METRIC_WD);
  EXPECT_NEAR(s[0][0].item<float>(), 2.828, 1e-3);
  EXPECT_NEAR(s[0][1].item<float>(), 5.831, 1e-3);
  at::Tensor d = BarberScores(w_dense, acc, 2, v1::BARBER_METRIC_D);
  EXPECT_NEAR(d[0][0].item<float>(), 1.414, 1e-3);
  EXPECT_NEAR(d[0][1].item<float>(), 5.831, 1e-3);
  at::Tensor wm = BarberScores(w_dense, acc, 2, v1::BARBER_METRIC_W);
  EXPECT_NEAR(wm[0][1].item<float>(), 1.0, 1e-6);

  const at::Tensor pruned = B({1}, 2);
  RebuildCounts c1;
  at::Tensor m1 = RebuildRows(s, pruned, 1.0, &c1);  // R = 1, k = 1: swap
  EXPECT_EQ(Positions(m1), (std::set<int64_t>{0}));
  EXPECT_EQ(c1.profitable, 1);
  EXPECT_EQ(c1.swaps, 1);
  at::Tensor rebuilt = w_dense.masked_fill(m1, 0);  // w1 kept at its dense value −1
  EXPECT_FLOAT_EQ(rebuilt[0][0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(rebuilt[0][1].item<float>(), -1.0f);
  RebuildCounts c2;
  at::Tensor m2 = RebuildRows(s, pruned, 0.01, &c2);  // k = floor(0.01) = 0
  EXPECT_TRUE(at::equal(m2, pruned));
  EXPECT_EQ(c2.swaps, 0);
  EXPECT_EQ(c2.groups_changed, 0);
}

// ---------------------------------------------------------------------------------------
// §9.2 (c): find_threshold and the swap on one row.

TEST(HandExamples, BarberFindThresholdOneRow) {
  const at::Tensor s = F({9, 1, 7, 3, 8, 2, 6, 5}, {1, 8});
  const at::Tensor pruned = B({0, 2, 5, 7}, 8);
  struct Case {
    double tau;
    int64_t k;
    float t_g, t_p;
    std::set<int64_t> result;
  };
  for (const Case& c : {Case{0.01, 0, 9, 1, {0, 2, 5, 7}}, Case{0.5, 1, 7, 3, {1, 2, 5, 7}},
                        Case{1.0, 2, 5, 6, {1, 3, 5, 7}}}) {
    SCOPED_TRACE(c.tau);
    GroupSwapPlan plan = PlanGroupSwaps(s, pruned, c.tau);
    EXPECT_EQ(plan.profitable[0].item<int64_t>(), 2);  // diffs (8, 4, −1, −6)
    EXPECT_EQ(plan.swaps[0].item<int64_t>(), c.k);
    EXPECT_FLOAT_EQ(plan.t_g[0].item<float>(), c.t_g);
    EXPECT_FLOAT_EQ(plan.t_p[0].item<float>(), c.t_p);
    RebuildCounts counts;
    at::Tensor m = RebuildRows(s, pruned, c.tau, &counts);
    EXPECT_EQ(Positions(m), c.result);
    // No ties: the reference's threshold rule agrees.
    EXPECT_EQ(Positions(ReferenceRebuildRows(s, pruned, plan)), c.result);
    EXPECT_EQ(counts.reference_differences, 0);
  }
}

// ---------------------------------------------------------------------------------------
// §9.2 (d): the N:M (2:4) rebuild.

TEST(HandExamples, BarberNMRebuild) {
  const at::Tensor s = F({9, 1, 7, 3, 8, 2, 6, 5}, {1, 8});
  const at::Tensor pruned = B({0, 2, 5, 7}, 8);
  RebuildCounts counts;
  at::Tensor m = RebuildNM(s, pruned, 1.0, 2, 4, &counts);
  // Row-level k = 2 regrows 0 and 2 (group 1), which then drops its kept 1 and 3; group 2
  // is unchanged.
  EXPECT_EQ(Positions(m), (std::set<int64_t>{1, 3, 5, 7}));
  EXPECT_EQ(counts.swaps, 2);
  EXPECT_EQ(counts.reference_differences, 0);
  // τ = 0.5: k = 1 regrows position 0 (score 9); group 1 drops its weakest kept (position 1).
  at::Tensor m2 = RebuildNM(s, pruned, 0.5, 2, 4, nullptr);
  EXPECT_EQ(Positions(m2), (std::set<int64_t>{1, 2, 5, 7}));
}

// ---------------------------------------------------------------------------------------
// §9.2 (e): the SparseGPT OBS step, damping 0.

TEST(HandExamples, SparseGptObsStep) {
  at::Tensor w = F({1, 1}, {1, 2});
  at::Tensor h = F({2, 1, 1, 2}, {2, 2});
  const at::Tensor h_copy = h.clone();
  SparseGptStats stats;
  ASSERT_TRUE(SparseGptPruneRows(w, h, {1}, SparsityPattern{.ratio = 0.5},
                                 SparseGptOpts{.percdamp = 0.0, .blocksize = 128}, &stats)
                  .ok());
  // Saliencies w²/U_cc² = (1.5, 2.0): column 0 goes; err = 1/0.8165; w1 ← 1 + 1.2247·0.4082.
  EXPECT_FLOAT_EQ(w[0][0].item<float>(), 0.0f);
  EXPECT_NEAR(w[0][1].item<float>(), 1.5, 1e-5);
  EXPECT_NEAR(stats.loss, 0.75, 1e-5);  // 1 / (2 · (2/3))
  // Closed-form OBS: δ = −(w0 / [H⁻¹]00) · H⁻¹[:, 0] = (−1, +0.5).
  at::Tensor hinv = at::inverse(h_copy);
  at::Tensor delta = -(1.0 / hinv[0][0]) * hinv.select(1, 0);
  EXPECT_NEAR(1.0 + delta[0].item<float>(), w[0][0].item<float>(), 1e-5);
  EXPECT_NEAR(1.0 + delta[1].item<float>(), w[0][1].item<float>(), 1e-5);
  // Upper Cholesky of H⁻¹ as in the example (U00 = 0.8165, U01 = −0.4082, U11 = 0.7071).
  at::Tensor u = at::linalg_cholesky(hinv, /*upper=*/true);
  EXPECT_NEAR(u[0][0].item<float>(), 0.8165, 1e-4);
  EXPECT_NEAR(u[0][1].item<float>(), -0.4082, 1e-4);
  EXPECT_NEAR(u[1][1].item<float>(), 0.7071, 1e-4);
  // The reference's rule on this block (saliency <= sorted[int(2·0.5)] = 2.0) prunes both
  // columns; ours prunes exactly floor(2·0.5) = 1.
  at::Tensor sal = F({1.5f, 2.0f}, {2});
  EXPECT_EQ(sal.le(std::get<0>(at::sort(sal))[1]).sum().item<int64_t>(), 2);
}

// ---------------------------------------------------------------------------------------
// SparseGPT against a naive per-matrix, column-at-a-time implementation of methods.md §4
// (the reference's structure, with our exact per-block counts).

void NaiveSparseGpt(at::Tensor& w, at::Tensor h, const SparsityPattern& pattern, double percdamp,
                    int64_t blocksize) {
  const int64_t cols = w.size(1);
  at::Tensor dead = h.diagonal().eq(0);
  for (int64_t j = 0; j < cols; ++j) {
    if (dead[j].item<bool>()) {
      h[j][j] = 1.0;
      w.select(1, j).zero_();
    }
  }
  const double damp = percdamp * h.diagonal().mean().item<double>();
  for (int64_t j = 0; j < cols; ++j) h[j][j] += damp;
  at::Tensor hinv = at::linalg_cholesky(at::inverse(h), /*upper=*/true);
  for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
    const int64_t i2 = std::min(i1 + blocksize, cols), count = i2 - i1;
    at::Tensor w1 = w.narrow(1, i1, count).clone();
    at::Tensor q1 = at::zeros_like(w1), err1 = at::zeros_like(w1);
    at::Tensor hinv1 = hinv.narrow(0, i1, count).narrow(1, i1, count);
    at::Tensor mask1 = at::zeros_like(w1, at::kBool);
    if (!pattern.is_nm()) {
      at::Tensor tmp = w1.pow(2) / hinv1.diagonal().pow(2).unsqueeze(0);
      const auto k = static_cast<int64_t>(std::floor(tmp.numel() * pattern.ratio));
      at::Tensor order = std::get<1>(at::sort(tmp.reshape({-1}), true, 0, false));
      at::Tensor flat = mask1.view({-1});
      for (int64_t t = 0; t < k; ++t) flat[order[t].item<int64_t>()] = true;
    }
    for (int64_t i = 0; i < count; ++i) {
      if (pattern.is_nm() && i % pattern.m == 0) {
        at::Tensor tmp = w1.narrow(1, i, pattern.m).pow(2) /
                         hinv1.diagonal().narrow(0, i, pattern.m).pow(2).unsqueeze(0);
        at::Tensor idx = std::get<1>(at::sort(tmp, true, 1, false)).narrow(1, 0, pattern.n);
        mask1.scatter_(1, idx + i, true);
      }
      at::Tensor col = w1.select(1, i);
      const double d = hinv1[i][i].item<double>();
      at::Tensor q = col.masked_fill(mask1.select(1, i), 0);
      q1.select(1, i).copy_(q);
      at::Tensor e = (col - q) / d;
      w1.narrow(1, i, count - i) -=
          e.unsqueeze(1).matmul(hinv1[i].narrow(0, i, count - i).unsqueeze(0));
      err1.select(1, i).copy_(e);
    }
    w.narrow(1, i1, count).copy_(q1);
    if (i2 < cols)
      w.narrow(1, i2, cols - i2) -= err1.matmul(hinv.narrow(0, i1, count).narrow(1, i2, cols - i2));
  }
}

TEST(SparseGpt, StackedSweepMatchesNaivePerMatrix) {
  at::manual_seed(7);
  const int64_t cols = 40;
  at::Tensor x = at::randn({200, cols});
  x.select(1, 5).zero_();  // a dead input
  at::Tensor gram = x.t().matmul(x) * (2.0 / 200);
  const std::vector<int64_t> rows = {6, 4, 4};  // q, k, v sharing one Hessian
  std::vector<at::Tensor> mats;
  for (int64_t r : rows) mats.push_back(at::randn({r, cols}));
  for (const SparsityPattern& pattern :
       {SparsityPattern{.ratio = 0.5}, SparsityPattern{.ratio = 0.3},
        SparsityPattern{.ratio = 0.5, .n = 2, .m = 4}}) {
    SCOPED_TRACE(PatternName(pattern) + " " + std::to_string(pattern.ratio));
    at::Tensor stacked = at::cat(mats, 0);
    at::Tensor h = gram.clone();
    ASSERT_TRUE(SparseGptPruneRows(stacked, h, rows, pattern,
                                   SparseGptOpts{.percdamp = 0.01, .blocksize = 16}, nullptr)
                    .ok());
    int64_t r0 = 0;
    for (size_t i = 0; i < mats.size(); ++i) {
      at::Tensor naive = mats[i].clone();
      NaiveSparseGpt(naive, gram.clone(), pattern, 0.01, 16);
      at::Tensor ours = stacked.narrow(0, r0, rows[i]);
      EXPECT_TRUE(at::equal(ours.eq(0), naive.eq(0))) << "matrix " << i;
      EXPECT_TRUE(at::allclose(ours, naive, 1e-4, 1e-4)) << "matrix " << i;
      if (!pattern.is_nm()) {
        // Exact counts: Σ over the blocks (16, 16, 8 columns) of floor(rows·cols_b·r).
        int64_t expect = 0;
        for (int64_t c : {16, 16, 8})
          expect += static_cast<int64_t>(std::floor(rows[i] * c * pattern.ratio));
        EXPECT_EQ(ours.eq(0).sum().item<int64_t>(), expect);
      } else {
        EXPECT_TRUE(at::all(ours.eq(0).view({rows[i], cols / 4, 4}).sum(2).eq(2)).item<bool>());
      }
      r0 += rows[i];
    }
  }
}

TEST(SparseGpt, ReconstructionBeatsZeroingTheSameMask) {
  at::manual_seed(3);
  // Correlated inputs (low rank plus noise), as real activations are: the OBS update then
  // has something to compensate with.
  at::Tensor x = at::randn({300, 8}).matmul(at::randn({8, 32})) + 0.1 * at::randn({300, 32});
  at::Tensor w = at::randn({12, 32});
  at::Tensor h = x.t().matmul(x) * (2.0 / 300);
  at::Tensor pruned = w.clone();
  ASSERT_TRUE(
      SparseGptPruneRows(pruned, h, {12}, SparsityPattern{.ratio = 0.5}, SparseGptOpts{}, nullptr)
          .ok());
  at::Tensor zeroed = w.masked_fill(pruned.eq(0), 0);
  const double err_obs = (x.matmul((w - pruned).t())).pow(2).sum().item<double>();
  const double err_zero = (x.matmul((w - zeroed).t())).pow(2).sum().item<double>();
  EXPECT_LT(err_obs, 0.5 * err_zero) << err_obs << " vs " << err_zero;
  // Ratio 0 changes nothing, bit for bit (no dead inputs here).
  at::Tensor same = w.clone();
  at::Tensor h2 = x.t().matmul(x);
  ASSERT_TRUE(
      SparseGptPruneRows(same, h2, {12}, SparsityPattern{.ratio = 0.0}, SparseGptOpts{}, nullptr)
          .ok());
  EXPECT_TRUE(at::equal(same, w));
}

// ---------------------------------------------------------------------------------------
// Mask rebuild against a naive per-group oracle, every granularity.

using testing::NaiveGroupResult;
using testing::NaiveGroups;
using testing::NaiveRebuildGroup;
std::vector<float> ToVec(const at::Tensor& t) { return testing::ToFloatVector(t); }
std::vector<bool> ToBoolVec(const at::Tensor& t) { return testing::ToBoolVector(t); }

TEST(BarberRebuild, MatchesNaiveGroupsForEveryGranularity) {
  at::manual_seed(11);
  // A block of three matrices with an exact per-row initial mask (as Wanda gives).
  const std::vector<std::array<int64_t, 2>> shapes = {{6, 20}, {4, 20}, {5, 12}};
  std::vector<at::Tensor> scores, masks;
  for (auto [r, c] : shapes) {
    scores.push_back(at::rand({r, c}));
    at::Tensor order = std::get<1>(at::sort(at::rand({r, c}), /*dim=*/1));
    masks.push_back(at::zeros({r, c}, at::kBool).scatter_(1, order.narrow(1, 0, c / 2), true));
  }
  for (double tau : {0.0, 0.3, 0.5, 1.0}) {
    for (v1::BarberGranularity g : {v1::BARBER_GRANULARITY_OUTPUT1, v1::BARBER_GRANULARITY_INPUT1,
                                    v1::BARBER_GRANULARITY_LAYER, v1::BARBER_GRANULARITY_BLOCK}) {
      SCOPED_TRACE(EnumName(g) + " tau " + std::to_string(tau));
      RebuildCounts counts;
      std::vector<at::Tensor> out =
          RebuildBlockMasks(scores, masks, g, SparsityPattern{.ratio = 0.5}, tau, &counts);
      const auto groups = NaiveGroups(shapes, g);
      int64_t total_k = 0;
      for (const auto& group : groups) {
        std::vector<float> s;
        std::vector<bool> before, after;
        for (auto [mi, f] : group) {
          s.push_back(ToVec(scores[mi])[f]);
          before.push_back(ToBoolVec(masks[mi])[f]);
          after.push_back(ToBoolVec(out[mi])[f]);
        }
        NaiveGroupResult expect = NaiveRebuildGroup(s, before, tau);
        ASSERT_EQ(after, expect.pruned);
        total_k += expect.k;
        // Same zero count; kept score never lower (each swap has g > p).
        EXPECT_EQ(std::count(after.begin(), after.end(), true),
                  std::count(before.begin(), before.end(), true));
        double kept_before = 0, kept_after = 0;
        for (size_t i = 0; i < s.size(); ++i) {
          if (!before[i]) kept_before += s[i];
          if (!after[i]) kept_after += s[i];
        }
        EXPECT_GE(kept_after, kept_before - 1e-9);
      }
      EXPECT_EQ(counts.groups, static_cast<int64_t>(groups.size()));
      EXPECT_EQ(counts.swaps, total_k);
      // Random scores have no ties; only τ = 1 can differ (k reaching a list's length makes the
      // reference take the last element as its threshold, one swap short).
      if (tau < 1.0) {
        EXPECT_EQ(counts.reference_differences, 0);
      }
      if (tau == 0.0) {
        for (size_t i = 0; i < out.size(); ++i) EXPECT_TRUE(at::equal(out[i], masks[i]));
      }
      if (tau == 1.0) {
        EXPECT_GT(total_k, 0);
      }
    }
  }
}

TEST(BarberRebuild, NMKeepsEveryGroupAndMatchesNaive) {
  at::manual_seed(5);
  const int64_t rows = 7, cols = 24;
  for (auto [n, m] : {std::pair<int64_t, int64_t>{2, 4}, {4, 8}}) {
    for (double tau : {0.0, 0.5, 1.0}) {
      SCOPED_TRACE(std::to_string(n) + ":" + std::to_string(m) + " tau " + std::to_string(tau));
      at::Tensor s = at::rand({rows, cols});
      at::Tensor mask = NMMask(at::rand({rows, cols}), n, m);
      RebuildCounts counts;
      at::Tensor out = RebuildNM(s, mask, tau, n, m, &counts);
      int64_t total_k = 0;
      for (int64_t i = 0; i < rows; ++i) {
        const std::vector<float> sv = ToVec(s[i]);
        const std::vector<bool> before = ToBoolVec(mask[i]);
        // Row level: the first k of the pruned list are regrown.
        NaiveGroupResult row = NaiveRebuildGroup(sv, before, tau);
        total_k += row.k;
        std::vector<bool> expect = before;
        for (int64_t j = 0; j < cols; ++j) {
          if (before[j] && !row.pruned[j]) expect[j] = false;  // regrown
        }
        // Per group: drop the r weakest originally-kept weights.
        for (int64_t g0 = 0; g0 < cols; g0 += m) {
          int64_t r = 0;
          std::vector<int64_t> kept;
          for (int64_t j = g0; j < g0 + m; ++j) {
            if (before[j] && !expect[j]) ++r;
            if (!before[j]) kept.push_back(j);
          }
          std::stable_sort(kept.begin(), kept.end(),
                           [&](int64_t a, int64_t b) { return sv[a] < sv[b]; });
          for (int64_t t = 0; t < r; ++t) expect[kept[t]] = true;
        }
        ASSERT_EQ(ToBoolVec(out[i]), expect) << "row " << i;
      }
      EXPECT_TRUE(at::all(out.view({rows, cols / m, m}).sum(2).eq(n)).item<bool>());
      EXPECT_EQ(counts.swaps, total_k);
      if (tau == 0.0) {
        EXPECT_TRUE(at::equal(out, mask));
      }
    }
  }
}

// Ties at a threshold: the reference's strict thresholds regrow without dropping (here: the
// kept list starts with zero scores, t_p = 0, nothing is < 0); ours swaps by index.
TEST(BarberRebuild, TiesKeepCountsAndAreCountedAsReferenceDifferences) {
  const at::Tensor s = F({5, 6, 0, 0, 0, 0, 1, 1}, {1, 8});
  const at::Tensor pruned = B({0, 1}, 8);
  GroupSwapPlan plan = PlanGroupSwaps(s, pruned, 0.5);  // R = 2, k = 1
  EXPECT_EQ(plan.swaps[0].item<int64_t>(), 1);
  EXPECT_FLOAT_EQ(plan.t_g[0].item<float>(), 5.0f);
  EXPECT_FLOAT_EQ(plan.t_p[0].item<float>(), 0.0f);
  RebuildCounts counts;
  at::Tensor ours = RebuildRows(s, pruned, 0.5, &counts);
  // Regrow position 1 (score 6), drop position 2 (the first of the tied zeros).
  EXPECT_EQ(Positions(ours), (std::set<int64_t>{0, 2}));
  EXPECT_EQ(Positions(ReferenceRebuildRows(s, pruned, plan)), (std::set<int64_t>{0}));
  EXPECT_EQ(counts.reference_differences, 1);
  // Groups with nothing pruned (ratio 0) or nothing kept stay as they are.
  RebuildCounts none;
  EXPECT_TRUE(at::equal(RebuildRows(s, B({}, 8), 1.0, &none), B({}, 8)));
  EXPECT_EQ(none.swaps + none.reference_differences, 0);
}

// ---------------------------------------------------------------------------------------
// The per-sequence gradient trick against one backward pass per sequence through the model's
// own forward (llama_model.h), with the weights as autograd leaves.

LlamaConfig TinyConfig() {
  LlamaConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;  // GQA
  c.head_dim = 4;
  c.num_hidden_layers = 1;
  c.vocab_size = 32;
  c.rms_norm_eps = 1e-5;
  return c;
}

LayerWeights RandomLayer(const LlamaConfig& c) {
  LayerWeights w;
  w.input_norm = 1 + 0.1 * at::randn({c.hidden_size});
  w.post_norm = 1 + 0.1 * at::randn({c.hidden_size});
  for (Proj p : kAllProjs) {
    auto shape = ProjShape(c, p);
    w[p] = at::randn({shape[0], shape[1]}) / std::sqrt(static_cast<double>(shape[1]));
  }
  return w;
}

TEST(BarberGradients, BatchedPerSequenceMatchesOneBackwardPerSequence) {
  at::manual_seed(21);
  const LlamaConfig c = TinyConfig();
  const int64_t seqs = 3, t = 5;
  LayerWeights dense = RandomLayer(c);
  LayerWeights sparse = dense;
  for (Proj p : kAllProjs)
    sparse[p] =
        WandaMask(dense[p].abs(), SparsityPattern{.ratio = 0.5}).logical_not().to(at::kFloat) *
        dense[p];
  const RopeCache rope = MakeRope(c, t, at::kCPU, at::kFloat);
  const at::Tensor xn = at::randn({seqs, t, c.hidden_size});
  const at::Tensor y_sparse = Attention(sparse, xn, rope, c);
  const at::Tensor hn = at::randn({seqs, t, c.hidden_size});
  const at::Tensor z_sparse = Mlp(sparse, hn);

  // Ours: one forward/backward for the batch.
  std::array<at::Tensor, 4> attn_acc;
  for (size_t i = 0; i < 4; ++i) attn_acc[i] = at::zeros_like(dense[kAttentionProjs[i]]);
  const double attn_sse = AttentionBlockError(dense, xn, y_sparse, rope, c, &attn_acc);
  std::array<at::Tensor, 3> mlp_acc;
  for (size_t i = 0; i < 3; ++i) mlp_acc[i] = at::zeros_like(dense[kMlpProjs[i]]);
  const double mlp_sse = MlpBlockError(dense, hn, z_sparse, &mlp_acc);

  // Oracle: per sequence, L_s = Σ (Y_s^sp − Y_s^dense)², ∂L_s/∂W by autograd on the model's
  // Attention / Mlp, squared and summed.
  std::array<at::Tensor, 7> expect;
  for (Proj p : kAllProjs) expect[static_cast<size_t>(p)] = at::zeros_like(dense[p]);
  double attn_sse_expect = 0, mlp_sse_expect = 0;
  for (int64_t s = 0; s < seqs; ++s) {
    LayerWeights leaf = dense;
    for (Proj p : kAllProjs) leaf[p] = dense[p].detach().clone().requires_grad_(true);
    at::Tensor la =
        (Attention(leaf, xn.narrow(0, s, 1), rope, c) - y_sparse.narrow(0, s, 1)).pow(2).sum();
    at::Tensor lm = (Mlp(leaf, hn.narrow(0, s, 1)) - z_sparse.narrow(0, s, 1)).pow(2).sum();
    attn_sse_expect += la.item<double>();
    mlp_sse_expect += lm.item<double>();
    auto ga = torch::autograd::grad(
        {la}, {leaf[Proj::kQ], leaf[Proj::kK], leaf[Proj::kV], leaf[Proj::kO]});
    auto gm = torch::autograd::grad({lm}, {leaf[Proj::kGate], leaf[Proj::kUp], leaf[Proj::kDown]});
    for (size_t i = 0; i < 4; ++i) expect[static_cast<size_t>(kAttentionProjs[i])] += ga[i].pow(2);
    for (size_t i = 0; i < 3; ++i) expect[static_cast<size_t>(kMlpProjs[i])] += gm[i].pow(2);
  }
  EXPECT_NEAR(attn_sse, attn_sse_expect, 1e-5 * attn_sse_expect);
  EXPECT_NEAR(mlp_sse, mlp_sse_expect, 1e-5 * mlp_sse_expect);
  for (size_t i = 0; i < 4; ++i) {
    const at::Tensor& e = expect[static_cast<size_t>(kAttentionProjs[i])];
    EXPECT_GT(e.abs().max().item<float>(), 0);
    EXPECT_TRUE(at::allclose(attn_acc[i], e, 1e-4, 1e-7)) << ProjName(kAttentionProjs[i]);
  }
  for (size_t i = 0; i < 3; ++i) {
    const at::Tensor& e = expect[static_cast<size_t>(kMlpProjs[i])];
    EXPECT_GT(e.abs().max().item<float>(), 0);
    EXPECT_TRUE(at::allclose(mlp_acc[i], e, 1e-4, 1e-7)) << ProjName(kMlpProjs[i]);
  }
  // The summed gradient is NOT what is accumulated: (Σ_s G_s)² differs from Σ_s G_s².
  // (Guards against an implementation that backpropagates the batch loss once.)
  LayerWeights leaf = dense;
  leaf[Proj::kQ] = dense[Proj::kQ].detach().clone().requires_grad_(true);
  at::Tensor lsum = (Attention(leaf, xn, rope, c) - y_sparse).pow(2).sum();
  at::Tensor gsum = torch::autograd::grad({lsum}, {leaf[Proj::kQ]})[0];
  EXPECT_FALSE(at::allclose(gsum.pow(2), attn_acc[0], 1e-3, 1e-7));
}

TEST(BarberGradients, AttentionContextMatchesModelAttention) {
  at::manual_seed(4);
  const LlamaConfig c = TinyConfig();
  LayerWeights w = RandomLayer(c);
  const RopeCache rope = MakeRope(c, 6, at::kCPU, at::kFloat);
  const at::Tensor xn = at::randn({2, 6, c.hidden_size});
  at::Tensor model_ctx;
  TapFn tap = [&](Tap which, const at::Tensor& x) {
    if (which == Tap::kAttnCtx) model_ctx = x;
  };
  at::Tensor y = Attention(w, xn, rope, c, &tap);
  at::Tensor ctx = AttentionContext(at::linear(xn, w[Proj::kQ]), at::linear(xn, w[Proj::kK]),
                                    at::linear(xn, w[Proj::kV]), rope, c);
  EXPECT_TRUE(at::allclose(ctx, model_ctx, 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(at::linear(ctx, w[Proj::kO]), y, 1e-6, 1e-6));
  // Without gradients the block error is the plain squared error.
  const at::Tensor target = at::randn_like(y);
  EXPECT_NEAR(AttentionBlockError(w, xn, target, rope, c, nullptr),
              (y - target).pow(2).sum().item<double>(), 1e-4);
}

}  // namespace
}  // namespace prunerd
