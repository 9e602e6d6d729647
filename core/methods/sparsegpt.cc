#include "core/methods/sparsegpt.h"

#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/engine/torch_util.h"
#include "core/methods/input_stats.h"
#include "core/methods/masks.h"
#include "core/methods/tf32_scope.h"

namespace prunerd {
namespace {

using Clock = std::chrono::steady_clock;

// Adds the device-synchronised wall time of fn() to *seconds.
template <typename Fn>
void Timed(const at::Device& device, double* seconds, Fn&& fn) {
  Synchronize(device);
  const auto start = Clock::now();
  fn();
  Synchronize(device);
  *seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

// True when the factorisation succeeded (info == 0).
bool CholeskyOk(const at::Tensor& info) { return info.item<int64_t>() == 0; }

}  // namespace

SparseGptStats& SparseGptStats::operator+=(const SparseGptStats& o) {
  factor_seconds += o.factor_seconds;
  mask_seconds += o.mask_seconds;
  sweep_seconds += o.sweep_seconds;
  lazy_seconds += o.lazy_seconds;
  loss += o.loss;
  dead_inputs += o.dead_inputs;
  columns += o.columns;
  return *this;
}

void SweepBlock(at::Tensor& wt, const at::Tensor& u, at::Tensor& mask, at::Tensor& err,
                const SparsityPattern& pattern) {
  const int64_t cnt = wt.size(0);
  const at::Tensor inv_d = u.diagonal().reciprocal();  // [cnt]
  // scale[i, r] = mask[i, r] / U_ii, so err_i = w_i * scale_i (q = w with the masked entries 0,
  // err = (w − q) / d).
  at::Tensor scale;
  if (!pattern.is_nm())
    scale = mask.to(at::kFloat).mul_(inv_d.unsqueeze(1));
  else
    scale = at::zeros_like(wt);
  const at::Tensor d2 = u.diagonal().pow(2);
  for (int64_t i = 0; i < cnt; ++i) {
    if (pattern.is_nm() && i % pattern.m == 0) {
      const int64_t m = std::min<int64_t>(pattern.m, cnt - i);
      at::Tensor sal = wt.narrow(0, i, m).pow(2).div_(d2.narrow(0, i, m).unsqueeze(1));
      at::Tensor idx = std::get<1>(at::sort(sal, /*stable=*/true, /*dim=*/0, false));
      at::Tensor group_mask = mask.narrow(0, i, m);
      group_mask.scatter_(0, idx.narrow(0, 0, std::min<int64_t>(pattern.n, m)), true);
      scale.narrow(0, i, m).copy_(
          group_mask.to(at::kFloat).mul_(inv_d.narrow(0, i, m).unsqueeze(1)));
    }
    at::Tensor e = err.select(0, i);
    at::mul_out(e, wt.select(0, i), scale.select(0, i));
    // wt[i:] -= U[i, i:] ⊗ err_i
    wt.narrow(0, i, cnt - i)
        .addr_(u.select(0, i).narrow(0, i, cnt - i), e, /*beta=*/1,
               /*alpha=*/-1);
  }
  wt.masked_fill_(mask, 0);
}

absl::Status SparseGptPruneRows(at::Tensor& w, at::Tensor& hessian,
                                const std::vector<int64_t>& row_groups,
                                const SparsityPattern& pattern, const v1::SparseGptOptions& options,
                                SparseGptStats* stats) {
  c10::InferenceMode inference;
  SparseGptStats local;
  SparseGptStats& st = stats != nullptr ? *stats : local;
  const at::Device device = w.device();
  const int64_t rows = w.size(0), cols = w.size(1);
  at::Tensor u;
  absl::Status status;
  Timed(device, &st.factor_seconds, [&] {
    at::Tensor diag = hessian.diagonal();
    const at::Tensor dead = diag.eq(0);
    st.dead_inputs += dead.sum().item<int64_t>();
    diag.masked_fill_(dead, 1.0);
    w.masked_fill_(dead.unsqueeze(0), 0.0);
    diag.add_(diag.mean() * options.percdamp());
    auto [chol, info] = at::linalg_cholesky_ex(hessian, /*upper=*/false, /*check_errors=*/false);
    if (!CholeskyOk(info)) {
      status = absl::FailedPreconditionError(
          "sparsegpt: the damped Hessian is not positive definite (too little calibration data "
          "for this width, or raise sparsegpt.percdamp)");
      return;
    }
    at::Tensor hinv = at::cholesky_inverse(chol, /*upper=*/false);
    auto [uu, info2] = at::linalg_cholesky_ex(hinv, /*upper=*/true, /*check_errors=*/false);
    if (!CholeskyOk(info2)) {
      status = absl::FailedPreconditionError(
          "sparsegpt: H^-1 is not positive definite (raise sparsegpt.percdamp)");
      return;
    }
    u = uu;
  });
  if (!status.ok()) return status;

  int64_t blocksize = std::max<int64_t>(1, options.blocksize());
  if (pattern.is_nm()) blocksize = std::max<int64_t>(pattern.m, blocksize - blocksize % pattern.m);

  // Transposed weights: a column of W is a contiguous row of wt.
  at::Tensor wt = w.t().contiguous();
  at::Tensor err_buf = at::empty({blocksize, rows}, wt.options());
  at::Tensor loss = at::zeros({}, wt.options());
  for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
    const int64_t cnt = std::min(blocksize, cols - i1);
    at::Tensor wt_blk = wt.narrow(0, i1, cnt);
    at::Tensor u_blk = u.narrow(0, i1, cnt).narrow(1, i1, cnt).contiguous();
    at::Tensor mask = at::zeros({cnt, rows}, wt.options().dtype(at::kBool));
    if (!pattern.is_nm()) {
      Timed(device, &st.mask_seconds, [&] {
        at::Tensor sal = wt_blk.pow(2).div_(u_blk.diagonal().pow(2).unsqueeze(1));
        int64_t r0 = 0;
        for (int64_t group_rows : row_groups) {
          // [group_rows, cnt], the reference's orientation (ties broken by its flat order).
          at::Tensor sub = sal.narrow(1, r0, group_rows).t();
          const auto count = static_cast<int64_t>(
              std::floor(static_cast<double>(group_rows * cnt) * pattern.ratio));
          mask.narrow(1, r0, group_rows).copy_(LowestPerMatrix(sub, count).t());
          r0 += group_rows;
        }
      });
    }
    at::Tensor err = err_buf.narrow(0, 0, cnt);
    Timed(device, &st.sweep_seconds, [&] { SweepBlock(wt_blk, u_blk, mask, err, pattern); });
    loss.add_(err.pow(2).sum(), 0.5);
    st.columns += cnt;
    if (i1 + cnt < cols) {
      Timed(device, &st.lazy_seconds, [&] {
        const int64_t rest = cols - i1 - cnt;
        // wt[rest] -= U[block, rest]ᵀ · Err
        wt.narrow(0, i1 + cnt, rest)
            .addmm_(u.narrow(0, i1, cnt).narrow(1, i1 + cnt, rest).t(), err, /*beta=*/1,
                    /*alpha=*/-1);
      });
    }
  }
  w.copy_(wt.t());
  st.loss += loss.item<double>();
  return absl::OkStatus();
}

namespace {

class SparseGptPruner : public LayerPruner {
 public:
  explicit SparseGptPruner(const v1::SparseGptOptions& options) : options_(options) {}

  absl::Status PruneLayer(LayerContext& ctx) override {
    const SparsityPattern& pattern = *ctx.pattern;
    if (!pattern.is_nm() && pattern.ratio <= 0.0) return absl::OkStatus();  // bitwise no-op
    InputStats stats;
    ctx.timer->Time("stats", [&] {
      // fp16/bf16 activations are exact in TF32: the Gram products stay exact (tf32_scope.h).
      ScopedTf32 tf32(ctx.device.is_cuda() && IsHalfOrBFloat16(ctx.dtype));
      stats = InputStats::Collect(ctx, /*with_gram=*/true);
    });
    if (stats.tokens <= 0) return absl::InvalidArgumentError("sparsegpt: no calibration tokens");
    absl::Status status;
    SparseGptStats layer_stats;
    ctx.timer->Time("prune", [&] {
      c10::InferenceMode inference;
      const std::vector<std::vector<Proj>> groups = {
          {Proj::kQ, Proj::kK, Proj::kV}, {Proj::kO}, {Proj::kGate, Proj::kUp}, {Proj::kDown}};
      for (const std::vector<Proj>& group : groups) {
        std::vector<at::Tensor> parts;
        std::vector<int64_t> sizes;
        for (Proj p : group) {
          parts.push_back((*ctx.weights)[p].to(at::kFloat));
          sizes.push_back(parts.back().size(0));
        }
        at::Tensor w = parts.size() == 1 ? parts[0].contiguous() : at::cat(parts, 0);
        if (w.data_ptr() == (*ctx.weights)[group[0]].data_ptr()) w = w.clone();
        // H = (2/n) Σ x xᵀ; the scale does not change the result, only the reported loss.
        at::Tensor h = stats.Gram(group[0]).mul(2.0 / static_cast<double>(stats.tokens));
        status = SparseGptPruneRows(w, h, sizes, pattern, options_, &layer_stats);
        if (!status.ok()) {
          status = absl::Status(
              status.code(), absl::StrCat(std::string(ProjName(group[0])), ": ", status.message()));
          return;
        }
        int64_t r0 = 0;
        for (size_t i = 0; i < group.size(); ++i) {
          (*ctx.weights)[group[i]].copy_(w.narrow(0, r0, sizes[i]));
          r0 += sizes[i];
        }
      }
    });
    total_ += layer_stats;
    per_layer_loss_.push_back(layer_stats.loss);
    return status;
  }

  void Report(v1::PruneReport* report) const override {
    v1::SparseGptReport* r = report->mutable_sparsegpt();
    r->mutable_loss_per_layer()->Add(per_layer_loss_.begin(), per_layer_loss_.end());
    r->set_dead_inputs(total_.dead_inputs);
    r->set_columns_swept(total_.columns);
    r->set_factor_seconds(total_.factor_seconds);
    r->set_mask_seconds(total_.mask_seconds);
    r->set_sweep_seconds(total_.sweep_seconds);
    r->set_lazy_update_seconds(total_.lazy_seconds);
  }

 private:
  v1::SparseGptOptions options_;
  SparseGptStats total_;
  std::vector<double> per_layer_loss_;
};

}  // namespace

std::unique_ptr<LayerPruner> MakeSparseGptPruner(const v1::SparseGptOptions& options) {
  return std::make_unique<SparseGptPruner>(options);
}

}  // namespace prunerd
