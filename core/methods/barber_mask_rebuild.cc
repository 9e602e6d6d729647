#include "core/methods/barber_mask_rebuild.h"

#include <limits>

namespace prunerd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

int64_t SumInt(const at::Tensor& t) { return t.sum().item<int64_t>(); }

// Number of rows where a and b differ anywhere.
int64_t RowsDiffering(const at::Tensor& a, const at::Tensor& b) { return SumInt(a.ne(b).any(1)); }

}  // namespace

RebuildCounts& RebuildCounts::operator+=(const RebuildCounts& o) {
  groups += o.groups;
  groups_changed += o.groups_changed;
  profitable += o.profitable;
  swaps += o.swaps;
  reference_differences += o.reference_differences;
  return *this;
}

GroupSwapPlan PlanGroupSwaps(const at::Tensor& scores_in, const at::Tensor& pruned, double tau) {
  const at::Tensor scores = scores_in.to(at::kFloat);
  const int64_t n = scores.size(1);
  // Pruned list: pruned scores descending, kept slots −inf (sorted last).
  auto [gs, gi] = at::sort(scores.masked_fill(pruned.logical_not(), -kInf), /*stable=*/true,
                           /*dim=*/1, /*descending=*/true);
  // Kept list: kept scores ascending, pruned slots +inf (sorted last).
  auto [ps, pi] = at::sort(scores.masked_fill(pruned, kInf), /*stable=*/true, /*dim=*/1,
                           /*descending=*/false);
  GroupSwapPlan plan;
  // g[i] − p[i] never increases with i and the padding gives −inf, so the positive entries
  // are exactly the profitable prefix.
  plan.profitable = (gs - ps).gt(0).sum(1);
  plan.swaps = (plan.profitable.to(at::kDouble) * tau).floor().to(at::kLong);
  at::Tensor take =
      at::arange(n, scores.options().dtype(at::kLong)).unsqueeze(0).lt(plan.swaps.unsqueeze(1));
  plan.regrow = at::zeros_like(pruned).scatter_(1, gi, take);
  plan.drop = at::zeros_like(pruned).scatter_(1, pi, take);

  // The reference's thresholds: g[k], p[k], clamped to the last element of each list.
  const at::Tensor num_pruned = pruned.sum(1);
  const at::Tensor num_kept = n - num_pruned;
  at::Tensor gk = at::minimum(plan.swaps, num_pruned - 1).clamp_min(0).unsqueeze(1);
  at::Tensor pk = at::minimum(plan.swaps, num_kept - 1).clamp_min(0).unsqueeze(1);
  plan.t_g = gs.gather(1, gk).squeeze(1);
  plan.t_p = ps.gather(1, pk).squeeze(1);
  // Empty lists: thresholds that change nothing.
  const at::Tensor empty = num_pruned.eq(0).logical_or(num_kept.eq(0));
  plan.t_g.masked_fill_(empty, kInf);
  plan.t_p.masked_fill_(empty, -kInf);
  return plan;
}

at::Tensor ReferenceRebuildRows(const at::Tensor& scores_in, const at::Tensor& pruned,
                                const GroupSwapPlan& plan) {
  const at::Tensor scores = scores_in.to(at::kFloat);
  // mask[score > t_g] = False, then mask[score < t_p] = True, over all positions.
  at::Tensor m = pruned.logical_and(scores.gt(plan.t_g.unsqueeze(1)).logical_not());
  return m.logical_or(scores.lt(plan.t_p.unsqueeze(1)));
}

at::Tensor RebuildRows(const at::Tensor& scores, const at::Tensor& pruned, double tau,
                       RebuildCounts* counts) {
  GroupSwapPlan plan = PlanGroupSwaps(scores, pruned, tau);
  at::Tensor out = pruned.logical_and(plan.regrow.logical_not()).logical_or(plan.drop);
  if (counts != nullptr) {
    counts->groups += scores.size(0);
    counts->groups_changed += SumInt(plan.swaps.gt(0));
    counts->profitable += SumInt(plan.profitable);
    counts->swaps += SumInt(plan.swaps);
    counts->reference_differences += RowsDiffering(out, ReferenceRebuildRows(scores, pruned, plan));
  }
  return out;
}

at::Tensor RebuildNM(const at::Tensor& scores_in, const at::Tensor& pruned, double tau, int64_t n,
                     int64_t m, RebuildCounts* counts) {
  const at::Tensor scores = scores_in.to(at::kFloat);
  const int64_t rows = scores.size(0), cols = scores.size(1), groups = cols / m;
  TORCH_CHECK(cols % m == 0 && 2 * n <= m, "RebuildNM: needs cols % M == 0 and 2N <= M");
  GroupSwapPlan plan = PlanGroupSwaps(scores, pruned, tau);
  // r per group = regrown there; prune the r weakest originally-kept weights of that group.
  at::Tensor r = plan.regrow.view({rows, groups, m}).sum(2);  // [rows, groups]
  at::Tensor kept_scores = scores.masked_fill(pruned, kInf).view({rows, groups, m});
  auto [ks, ki] = at::sort(kept_scores, /*stable=*/true, /*dim=*/2, /*descending=*/false);
  at::Tensor take = at::arange(m, r.options()).view({1, 1, m}).lt(r.unsqueeze(2));
  at::Tensor drop = at::zeros({rows, groups, m}, pruned.options()).scatter_(2, ki, take);
  at::Tensor out =
      pruned.logical_and(plan.regrow.logical_not()).logical_or(drop.view({rows, cols}));
  if (counts != nullptr) {
    counts->groups += rows;
    counts->groups_changed += SumInt(plan.swaps.gt(0));
    counts->profitable += SumInt(plan.profitable);
    counts->swaps += SumInt(plan.swaps);
    // Reference: regrow = pruned ∧ score > t_g; then per group prune kept weights whose score
    // is below the r-th entry of the group's sorted kept scores (pruned entries +inf).
    at::Tensor regrow_ref = pruned.logical_and(scores.gt(plan.t_g.unsqueeze(1)));
    at::Tensor r_ref = regrow_ref.view({rows, groups, m}).sum(2, /*keepdim=*/true);
    at::Tensor thr = ks.gather(2, r_ref.clamp_max(m - 1));
    at::Tensor drop_ref =
        pruned.logical_not().view({rows, groups, m}).logical_and(kept_scores.lt(thr));
    at::Tensor ref =
        pruned.logical_and(regrow_ref.logical_not()).logical_or(drop_ref.view({rows, cols}));
    counts->reference_differences += RowsDiffering(out, ref);
  }
  return out;
}

std::vector<at::Tensor> RebuildBlockMasks(const std::vector<at::Tensor>& scores,
                                          const std::vector<at::Tensor>& pruned,
                                          v1::BarberGranularity granularity,
                                          const SparsityPattern& pattern, double tau,
                                          RebuildCounts* counts) {
  std::vector<at::Tensor> out(scores.size());
  if (pattern.is_nm()) {
    for (size_t i = 0; i < scores.size(); ++i) {
      out[i] = RebuildNM(scores[i], pruned[i], tau, pattern.n, pattern.m, counts);
    }
    return out;
  }
  switch (granularity) {
    case v1::BARBER_GRANULARITY_OUTPUT1:
      for (size_t i = 0; i < scores.size(); ++i) {
        out[i] = RebuildRows(scores[i], pruned[i], tau, counts);
      }
      break;
    case v1::BARBER_GRANULARITY_INPUT1:
      for (size_t i = 0; i < scores.size(); ++i) {
        out[i] = RebuildRows(scores[i].t().contiguous(), pruned[i].t().contiguous(), tau, counts)
                     .t()
                     .contiguous();
      }
      break;
    case v1::BARBER_GRANULARITY_LAYER:
      for (size_t i = 0; i < scores.size(); ++i) {
        out[i] = RebuildRows(scores[i].reshape({1, -1}), pruned[i].reshape({1, -1}), tau, counts)
                     .view(scores[i].sizes());
      }
      break;
    case v1::BARBER_GRANULARITY_BLOCK: {
      std::vector<at::Tensor> s_flat, p_flat;
      for (size_t i = 0; i < scores.size(); ++i) {
        s_flat.push_back(scores[i].to(at::kFloat).reshape({-1}));
        p_flat.push_back(pruned[i].reshape({-1}));
      }
      at::Tensor all =
          RebuildRows(at::cat(s_flat).unsqueeze(0), at::cat(p_flat).unsqueeze(0), tau, counts)
              .squeeze(0);
      int64_t offset = 0;
      for (size_t i = 0; i < scores.size(); ++i) {
        const int64_t numel = scores[i].numel();
        out[i] = all.narrow(0, offset, numel).view(scores[i].sizes());
        offset += numel;
      }
      break;
    }
    default:  // validated with the spec (job_spec.h); an unknown value rebuilds nothing
      for (size_t i = 0; i < scores.size(); ++i) out[i] = pruned[i];
      break;
  }
  return out;
}

}  // namespace prunerd
