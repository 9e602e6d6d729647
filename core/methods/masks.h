// File: masks.h  (internal to core/: includes ATen)
//
// Mask arithmetic shared by the unstructured methods. A mask is a bool tensor shaped like the
// weight, true = pruned. Scores: higher = more important (kept).
//
//   at::Tensor m = LowestPerRow(scores, count);      // exact per-row count, ties by index
//   at::Tensor m = NMMask(scores, 2, 4);              // N lowest in every M input columns
//   ApplyMask(w, m);                                  // w[m] = 0 in place
//
// Conventions of the reference code (methods.md §2–3) and where we differ:
//  - Wanda: per output row, exactly floor(in·r) lowest scores, stable sort (ties → lower
//    column index pruned first): LowestPerRow.
//  - Magnitude: the reference prunes |W| <= sorted[int(numel·r)] per matrix, i.e.
//    int(numel·r)+1 weights or more with ties (an off-by-one). We prune exactly
//    floor(numel·r) (LowestPerMatrix) and document the difference.
//  - N:M: for every row and every aligned group of M input columns, the N lowest scores
//    (ties → lower index).
//
// Thread-safety: pure functions.
#pragma once

#include <ATen/ATen.h>

namespace prunerd {

// Mask of the `count` lowest scores in each row of a 2-D tensor; ties broken by column index.
at::Tensor LowestPerRow(const at::Tensor& scores, int64_t count);
// Mask of exactly `count` lowest scores over the whole tensor; ties broken by flat index.
at::Tensor LowestPerMatrix(const at::Tensor& scores, int64_t count);
// N:M mask along the input dimension (dim 1); in_features must be a multiple of m.
at::Tensor NMMask(const at::Tensor& scores, int64_t n, int64_t m);
// Sets w[mask] = 0 in place.
void ApplyMask(at::Tensor& w, const at::Tensor& mask);

}  // namespace prunerd
