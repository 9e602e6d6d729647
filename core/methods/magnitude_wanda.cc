#include "core/methods/magnitude_wanda.h"

#include <cmath>

#include "core/methods/masks.h"

namespace prunerd {

at::Tensor MagnitudeMask(const at::Tensor& w, const SparsityPattern& pattern) {
  at::Tensor scores = w.abs().to(at::kFloat);
  if (pattern.is_nm()) return NMMask(scores, pattern.n, pattern.m);
  const int64_t count = static_cast<int64_t>(std::floor(w.numel() * pattern.ratio));
  return LowestPerMatrix(scores, count);
}

at::Tensor WandaScores(const at::Tensor& w, const at::Tensor& col_sq_sum) {
  return w.abs().to(at::kFloat) * col_sq_sum.sqrt().unsqueeze(0);
}

at::Tensor WandaMask(const at::Tensor& scores, const SparsityPattern& pattern) {
  if (pattern.is_nm()) return NMMask(scores, pattern.n, pattern.m);
  const int64_t count = static_cast<int64_t>(std::floor(scores.size(1) * pattern.ratio));
  return LowestPerRow(scores, count);
}

namespace {

class MagnitudePruner : public LayerPruner {
 public:
  absl::Status PruneLayer(LayerContext& ctx) override {
    ctx.timer->Time("prune", [&] {
      for (Proj p : kAllProjs) {
        at::Tensor& w = (*ctx.weights)[p];
        ApplyMask(w, MagnitudeMask(w, *ctx.pattern));
      }
    });
    return absl::OkStatus();
  }
};

class WandaPruner : public LayerPruner {
 public:
  absl::Status PruneLayer(LayerContext& ctx) override {
    InputStats stats;
    ctx.timer->Time("stats", [&] { stats = InputStats::Collect(ctx, /*with_gram=*/false); });
    ctx.timer->Time("prune", [&] {
      for (Proj p : kAllProjs) {
        at::Tensor& w = (*ctx.weights)[p];
        ApplyMask(w, WandaMask(WandaScores(w, stats.SqSum(p)), *ctx.pattern));
      }
    });
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<LayerPruner> MakeMagnitudePruner() { return std::make_unique<MagnitudePruner>(); }
std::unique_ptr<LayerPruner> MakeWandaPruner() { return std::make_unique<WandaPruner>(); }

}  // namespace prunerd
