// File: barber_mask_rebuild.h  (internal to core/: includes ATen)
//
// LLM-Barber's mask rebuild (methods.md §5.4, §5.7), vectorised: given scores (higher = more
// important) and the current mask (true = pruned) of a block's matrices, swap a few pruned and
// kept weights inside each comparison group so that the kept score rises and the group's zero
// count stays exactly the same.
//
// Per group, with g = pruned scores sorted descending and p = kept scores sorted ascending:
//   R = #{i < min(|g|, |p|) : g[i] > p[i]}  (the profitable one-for-one swaps),
//   k = floor(R·τ);
// we regrow the k best pruned weights and prune the k worst kept ones, BY INDEX (stable sorts,
// ties broken by lower position first). The reference code instead thresholds
// (score > g[k] → regrow, then score < p[k] → prune) which, with ties at a threshold, moves a
// different number of weights and changes the group's sparsity. We compute what the
// reference rule would have produced too and count the groups where it differs
// (RebuildCounts::reference_differences).
//
// No Python-style loop over rows: one sort per side per group row, then gathers/scatters
// (methods.md §5.7: kept slots hold −inf in the pruned list and +inf in the kept list, so the
// padding never yields a positive difference).
//
// N:M (methods.md §5.4 "N:M path"): k and the regrown set come from the whole row as above;
// then in each group of M input columns the r weakest originally-kept weights are pruned,
// r = the number regrown in that group, so every group keeps exactly N zeros. Needs 2N ≤ M.
//
//   RebuildCounts counts;
//   std::vector<at::Tensor> masks = RebuildBlockMasks(scores, masks_before,
//       v1::BARBER_GRANULARITY_OUTPUT1, pattern, /*tau=*/0.01, &counts);
//
// Thread-safety: pure functions.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "core/api/job_spec.h"

namespace prunerd {

// The swap decision for every row of a [G, n] score matrix (one comparison group per row).
struct GroupSwapPlan {
  at::Tensor profitable;  // [G] int64: R
  at::Tensor swaps;       // [G] int64: k = floor(R·τ)
  at::Tensor regrow;      // [G, n] bool: the k best pruned positions
  at::Tensor drop;        // [G, n] bool: the k worst kept positions
  // The reference's thresholds g[k] and p[k] (the last element when k reaches the list's
  // length). Groups with no pruned or no kept weight get +inf / −inf (the reference indexes
  // an empty list there; we leave such groups unchanged).
  at::Tensor t_g;  // [G] float
  at::Tensor t_p;  // [G] float
};

// `scores` [G, n] float, `pruned` [G, n] bool.
GroupSwapPlan PlanGroupSwaps(const at::Tensor& scores, const at::Tensor& pruned, double tau);

struct RebuildCounts {
  int64_t groups = 0;                 // comparison groups examined
  int64_t groups_changed = 0;         // groups whose mask changed
  int64_t profitable = 0;             // Σ R
  int64_t swaps = 0;                  // Σ k = weights regrown = weights newly pruned
  int64_t reference_differences = 0;  // groups where the reference's threshold rule differs

  RebuildCounts& operator+=(const RebuildCounts& o);
};

// Unstructured rebuild with one group per row. Returns the new mask; adds to `counts`.
at::Tensor RebuildRows(const at::Tensor& scores, const at::Tensor& pruned, double tau,
                       RebuildCounts* counts);

// The mask the reference's strict-threshold rule gives for one group per row (for counting
// differences, and as a test oracle for tie-free inputs).
at::Tensor ReferenceRebuildRows(const at::Tensor& scores, const at::Tensor& pruned,
                                const GroupSwapPlan& plan);

// N:M rebuild of a [rows, cols] matrix (cols a multiple of m, 2n ≤ m): per-row k, per-group
// drops. Returns the new mask; `counts` counts rows as groups.
at::Tensor RebuildNM(const at::Tensor& scores, const at::Tensor& pruned, double tau, int64_t n,
                     int64_t m, RebuildCounts* counts);

// Rebuilds the masks of all matrices of one block (q/k/v/o or gate/up/down) under
// `granularity`: kOutput1 = each row, kInput1 = each column, kLayer = each matrix, kBlock =
// all weights of the block together. N:M patterns always use the per-row N:M rule (the
// reference's N:M branch ignores the granularity flag). `scores[i]` float and `pruned[i]`
// bool have the shape of matrix i.
std::vector<at::Tensor> RebuildBlockMasks(const std::vector<at::Tensor>& scores,
                                          const std::vector<at::Tensor>& pruned,
                                          v1::BarberGranularity granularity,
                                          const SparsityPattern& pattern, double tau,
                                          RebuildCounts* counts);

}  // namespace prunerd
