// File: sparsegpt.h  (internal to core/: includes ATen)
//
// SparseGPT (Frantar & Alistarh 2023; methods.md §4): prunes each linear layer with an
// approximate OBS reconstruction, column by column, using the Hessian proxy
// H = (2/n) Σ x xᵀ of its calibration inputs (fp32).
//
//   1. dead inputs (H_jj = 0): H_jj = 1, W[:, j] = 0;
//   2. H += percdamp · mean(diag H) · I;
//   3. U = upper Cholesky factor of H⁻¹;
//   4. columns in blocks of `blocksize`: the unstructured mask of a block is chosen once, on
//      the (lazily updated) weights, by saliency w² / U_cc², over all rows × block columns of
//      one matrix; the N:M mask is chosen at every M-th column on the updated weights; then
//      per column: err = (w − q) / U_cc, later columns of the block −= err ⊗ U[c, c:];
//      after the block, later columns −= Err · U[block, rest];
//   5. the result is written back in the compute dtype.
//
// Where we differ from the reference code, on purpose:
//  - Exact counts: each block prunes exactly floor(rows · block_cols · r) weights of each
//    matrix (stable order, ties → lower flat index), where the reference prunes every
//    saliency <= sorted[int(numel·r)], i.e. one more per block (more with ties): at 50% on a
//    4096-column matrix the reference prunes 32 weights too many per matrix, and prunes both
//    columns of a 1×2 block (methods.md §9.2(e)). Over a matrix the count is
//    Σ_blocks floor(rows · cols_b · r), equal to floor(rows · cols · r) whenever
//    rows · blocksize · r is an integer (e.g. r = 0.5).
//  - The N:M choice uses a stable sort instead of topk (only ties differ).
//  - Ratio 0 (unstructured) returns at once: no statistics, no dead-input zeroing, so the
//    layer stays bit for bit (the reference would still zero dead input columns).
// On CUDA with fp16/bf16 compute, the Gram matrices are accumulated with TF32 matmuls, which
// is exact for such inputs (tf32_scope.h) and several times faster than fp32 GEMMs.
// Matrices that share a Hessian (q/k/v; gate/up) are stacked and swept together: every row's
// update depends only on that row and the shared U, so this is exactly the per-matrix
// algorithm with fewer, larger kernels. The weights are kept transposed ([cols, rows]) during
// the sweep so that a column is contiguous.
//
// The in-block sweep (SweepBlock) issues two kernels per column (err, then a rank-1 update),
// plus a few per M-th column for N:M. It is a separate function so that a fused device kernel
// (one thread block per set of rows holding its rows × blocksize tile in shared memory) can
// replace it without touching the rest.
//
// Thread-safety: pure functions; one pruner per job.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "core/api/job_spec.h"
#include "core/methods/layer_pruner.h"

namespace prunerd {

// Where the pruning time goes (seconds, device-synchronised) and what it did.
struct SparseGptStats {
  double factor_seconds = 0;  // dead inputs, damping, Cholesky, inverse
  double mask_seconds = 0;    // unstructured block masks
  double sweep_seconds = 0;   // in-block column sweeps (incl. N:M masks)
  double lazy_seconds = 0;    // updates of later columns after each block
  double loss = 0;            // Σ err² / 2 (the reference's "error")
  int64_t dead_inputs = 0;
  int64_t columns = 0;  // column steps swept

  SparseGptStats& operator+=(const SparseGptStats& o);
};

// Prunes `w` ([rows, cols], fp32, contiguous, modified in place) with the Hessian `hessian`
// ([cols, cols] fp32; modified). `row_groups` lists the row counts of the matrices stacked in
// `w` (their sum = rows); unstructured counts are exact per matrix and block. For N:M the
// block size is rounded down to a multiple of M. FailedPrecondition when H (after damping)
// is not positive definite.
absl::Status SparseGptPruneRows(at::Tensor& w, at::Tensor& hessian,
                                const std::vector<int64_t>& row_groups,
                                const SparsityPattern& pattern, const v1::SparseGptOptions& options,
                                SparseGptStats* stats);

// The in-block sweep on a transposed block: `wt` [cnt, rows] (block columns as rows; updated
// in place, pruned entries end at exactly 0), `u` [cnt, cnt] the block of the upper Cholesky
// factor of H⁻¹, `mask` [cnt, rows] bool (unstructured: given; N:M: filled at every M-th
// column from the updated weights), `err` [cnt, rows] fp32 output (the OBS errors, for the
// lazy update). Returns nothing; no host synchronisation.
void SweepBlock(at::Tensor& wt, const at::Tensor& u, at::Tensor& mask, at::Tensor& err,
                const SparsityPattern& pattern);

std::unique_ptr<LayerPruner> MakeSparseGptPruner(const v1::SparseGptOptions& options);

}  // namespace prunerd
