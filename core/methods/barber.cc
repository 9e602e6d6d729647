#include "core/methods/barber.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/torch_util.h"
#include "core/methods/barber_gradients.h"
#include "core/methods/tf32_scope.h"

namespace prunerd {
namespace {

using Clock = std::chrono::steady_clock;

template <typename Fn>
void Timed(const at::Device& device, double* seconds, Fn&& fn) {
  Synchronize(device);
  const auto start = Clock::now();
  fn();
  Synchronize(device);
  *seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<at::Tensor> ZeroAccumulators(const LayerWeights& w, const std::vector<Proj>& projs) {
  std::vector<at::Tensor> acc;
  for (Proj p : projs) acc.push_back(at::zeros(w[p].sizes(), w[p].options().dtype(at::kFloat)));
  return acc;
}

void SetCounts(const RebuildCounts& c, v1::RebuildCounts* out) {
  out->set_groups(c.groups);
  out->set_groups_changed(c.groups_changed);
  out->set_profitable_swaps(c.profitable);
  out->set_swaps(c.swaps);
  out->set_reference_threshold_differences(c.reference_differences);
}

void SetBlock(const BarberBlockRecord& r, v1::BarberBlock* out) {
  SetCounts(r.counts, out->mutable_counts());
  if (!std::isnan(r.mse_before)) out->set_mse_before(r.mse_before);
  if (!std::isnan(r.mse_after)) out->set_mse_after(r.mse_after);
}

}  // namespace

BarberTuning BarberTuningFor(const v1::BarberOptions& options, at::ScalarType compute_dtype) {
  BarberTuning t;
  const v1::GradPrecision p = options.grad_precision();
  if (p == v1::GRAD_PRECISION_BFLOAT16 ||
      (p == v1::GRAD_PRECISION_AUTO && compute_dtype != at::kFloat)) {
    t.grad_dtype = at::kBFloat16;
  } else {
    t.grad_dtype = at::kFloat;
    t.tf32 = p == v1::GRAD_PRECISION_TF32;
  }
  t.measure_block_mse = !options.skip_block_mse();
  return t;
}

BarberLayer::BarberLayer(LayerContext& ctx, const LayerWeights& dense,
                         const v1::BarberOptions& options, const BarberTuning& tuning)
    : ctx_(ctx), dense_(dense), options_(options), tuning_(tuning) {
  at::NoGradGuard no_grad;
  for (Proj p : kAllProjs) dense_grad_[p] = dense[p].to(tuning.grad_dtype);
  rope_grad_ = tuning.grad_dtype == ctx.dtype
                   ? *ctx.rope
                   : MakeRope(*ctx.config, ctx.inputs->size(1), ctx.device, tuning.grad_dtype);
  grad_batch_ = tuning.grad_batch > 0 ? tuning.grad_batch : std::max<int64_t>(1, ctx.batch / 4);
}

bool BarberLayer::NeedGradients() const {
  return options_.tau() > 0 && options_.metric() != v1::BARBER_METRIC_W;
}

void BarberLayer::ForEachGradBatch(const std::function<void(const at::Tensor& x)>& fn) const {
  const int64_t n = ctx_.inputs->size(0);
  for (int64_t b0 = 0; b0 < n; b0 += grad_batch_) {
    fn(ctx_.inputs->narrow(0, b0, std::min(grad_batch_, n - b0)));
  }
}

absl::Status BarberLayer::Rebuild(const std::vector<Proj>& projs,
                                  const std::vector<at::Tensor>& grad_sq,
                                  BarberBlockRecord& record) {
  at::NoGradGuard no_grad;
  LayerWeights& w = *ctx_.weights;
  const int64_t sequences = ctx_.inputs->size(0);
  std::vector<at::Tensor> scores, masks;
  Timed(ctx_.device, &record.rebuild_seconds, [&] {
    for (size_t i = 0; i < projs.size(); ++i) {
      const Proj p = projs[i];
      // Without gradients (tau 0 or metric w) the scores only matter through |W|.
      scores.push_back(grad_sq.empty()
                           ? BarberScores(dense_[p], at::Tensor(), sequences, v1::BARBER_METRIC_W)
                           : BarberScores(dense_[p], grad_sq[i], sequences, options_.metric()));
      masks.push_back(w[p].eq(0));
    }
  });
  bool finite = true;
  for (const at::Tensor& s : scores) finite = finite && at::isfinite(s).all().item<bool>();
  if (!finite) {
    return absl::InternalError(
        "barber: non-finite scores (the dense block's gradients overflowed)");
  }
  Timed(ctx_.device, &record.rebuild_seconds, [&] {
    std::vector<at::Tensor> rebuilt = RebuildBlockMasks(
        scores, masks, options_.granularity(), *ctx_.pattern, options_.tau(), &record.counts);
    for (size_t i = 0; i < projs.size(); ++i) {
      const Proj p = projs[i];
      // Kept weights back to their dense values; with retain_reconstruction, weights kept by
      // the init keep its (SparseGPT-updated) values and revived ones get the dense value.
      at::Tensor base =
          options_.retain_reconstruction() ? at::where(masks[i], dense_[p], w[p]) : dense_[p];
      w[p].copy_(base.masked_fill(rebuilt[i], 0));
    }
  });
  last_scores_ = std::move(scores);
  last_masks_before_ = std::move(masks);
  return absl::OkStatus();
}

absl::Status BarberLayer::RebuildAttention() {
  const LayerWeights& w = *ctx_.weights;
  const LlamaConfig& c = *ctx_.config;
  BarberBlockRecord& record = records_[0];
  const std::vector<Proj> projs(kAttentionProjs.begin(), kAttentionProjs.end());
  const bool grads = NeedGradients();
  std::vector<at::Tensor> acc = grads ? ZeroAccumulators(w, projs) : std::vector<at::Tensor>();
  std::array<at::Tensor, 4> acc4;
  if (grads) std::copy(acc.begin(), acc.end(), acc4.begin());
  double sse = 0;
  int64_t elements = 0;
  Timed(ctx_.device, &record.grad_seconds, [&] {
    ForEachGradBatch([&](const at::Tensor& x) {
      at::Tensor xn, y_sparse;
      {
        at::NoGradGuard no_grad;
        xn = RmsNorm(x, w.input_norm, c.rms_norm_eps);
        y_sparse = Attention(w, xn, *ctx_.rope, c);
      }
      sse += AttentionBlockError(dense_grad_, xn, y_sparse, rope_grad_, c, grads ? &acc4 : nullptr);
      elements += y_sparse.numel();
    });
  });
  record.mse_before = sse / static_cast<double>(elements);
  RETURN_IF_ERROR(Rebuild(projs, acc, record));
  if (tuning_.measure_block_mse) {
    double after = 0;
    Timed(ctx_.device, &record.mse_seconds, [&] {
      ForEachGradBatch([&](const at::Tensor& x) {
        at::NoGradGuard no_grad;
        at::Tensor xn = RmsNorm(x, w.input_norm, c.rms_norm_eps);
        after += AttentionBlockError(dense_grad_, xn, Attention(w, xn, *ctx_.rope, c), rope_grad_,
                                     c, nullptr);
      });
    });
    record.mse_after = after / static_cast<double>(elements);
  }
  return absl::OkStatus();
}

absl::Status BarberLayer::RebuildMlp() {
  const LayerWeights& w = *ctx_.weights;
  const LlamaConfig& c = *ctx_.config;
  BarberBlockRecord& record = records_[1];
  const std::vector<Proj> projs(kMlpProjs.begin(), kMlpProjs.end());
  const bool grads = NeedGradients();
  std::vector<at::Tensor> acc = grads ? ZeroAccumulators(w, projs) : std::vector<at::Tensor>();
  std::array<at::Tensor, 3> acc3;
  if (grads) std::copy(acc.begin(), acc.end(), acc3.begin());
  // The MLP input on the sparse stream, with the current (rebuilt) attention.
  auto mlp_input = [&](const at::Tensor& x) {
    at::NoGradGuard no_grad;
    at::Tensor h = x + Attention(w, RmsNorm(x, w.input_norm, c.rms_norm_eps), *ctx_.rope, c);
    return RmsNorm(h, w.post_norm, c.rms_norm_eps);
  };
  double sse = 0;
  int64_t elements = 0;
  Timed(ctx_.device, &record.grad_seconds, [&] {
    ForEachGradBatch([&](const at::Tensor& x) {
      at::Tensor hn = mlp_input(x), z_sparse;
      {
        at::NoGradGuard no_grad;
        z_sparse = Mlp(w, hn);
      }
      sse += MlpBlockError(dense_grad_, hn, z_sparse, grads ? &acc3 : nullptr);
      elements += z_sparse.numel();
    });
  });
  record.mse_before = sse / static_cast<double>(elements);
  RETURN_IF_ERROR(Rebuild(projs, acc, record));
  if (tuning_.measure_block_mse) {
    double after = 0;
    Timed(ctx_.device, &record.mse_seconds, [&] {
      ForEachGradBatch([&](const at::Tensor& x) {
        at::Tensor hn = mlp_input(x);
        at::NoGradGuard no_grad;
        after += MlpBlockError(dense_grad_, hn, Mlp(w, hn), nullptr);
      });
    });
    record.mse_after = after / static_cast<double>(elements);
  }
  return absl::OkStatus();
}

namespace {

class BarberPruner : public LayerPruner {
 public:
  BarberPruner(const v1::BarberOptions& options, std::unique_ptr<LayerPruner> init,
               std::optional<BarberTuning> tuning)
      : options_(options), init_(std::move(init)), fixed_tuning_(tuning) {}

  absl::Status PruneLayer(LayerContext& ctx) override {
    const SparsityPattern& pattern = *ctx.pattern;
    if (!pattern.is_nm() && pattern.ratio <= 0.0) return absl::OkStatus();  // nothing pruned
    if (pattern.is_nm() && 2 * pattern.n > pattern.m) {
      return absl::InvalidArgumentError(absl::StrCat(
          "barber: N:M needs N <= M/2 (each group must hold as many kept weights as pruned), got ",
          PatternName(pattern)));
    }
    if (ctx.init_weights == nullptr) {
      return absl::FailedPreconditionError(
          "barber: the initializer's pass over the model is missing (run through the executor)");
    }
    // ctx.weights holds the dense layer; it becomes the initializer's sparse layer, and `dense`
    // keeps the dense tensors.
    const LayerWeights dense = *ctx.weights;
    ctx.timer->Time("load", [&] {
      for (Proj p : kAllProjs) {
        (*ctx.weights)[p] = (*ctx.init_weights)[p].to(ctx.device, ctx.dtype, false, /*copy=*/true);
      }
    });
    tuning_ = fixed_tuning_ ? *fixed_tuning_ : BarberTuningFor(options_, ctx.dtype);
    BarberLayer layer(ctx, dense, options_, tuning_);
    absl::Status status;
    ctx.timer->Time("barber", [&] {
      ScopedTf32 tf32(tuning_.tf32 && ctx.device.is_cuda());
      status = layer.RebuildAttention();
      if (status.ok()) status = layer.RebuildMlp();
    });
    RETURN_IF_ERROR(status);
    layers_.push_back({layer.attention(), layer.mlp()});
    return absl::OkStatus();
  }

  LayerPruner* InitPass() override { return init_.get(); }

  void Report(v1::PruneReport* report) const override {
    RebuildCounts total;
    double grad = 0, rebuild = 0, mse = 0;
    int64_t measured = 0, improved = 0;
    v1::BarberReport* b = report->mutable_barber();
    for (size_t l = 0; l < layers_.size(); ++l) {
      for (const BarberBlockRecord& r : layers_[l]) {
        total += r.counts;
        grad += r.grad_seconds;
        rebuild += r.rebuild_seconds;
        mse += r.mse_seconds;
        if (!std::isnan(r.mse_after)) {
          ++measured;
          if (r.mse_after <= r.mse_before) ++improved;
        }
      }
      v1::BarberLayer* layer = b->add_layers();
      layer->set_layer(static_cast<int64_t>(l));
      SetBlock(layers_[l][0], layer->mutable_attention());
      SetBlock(layers_[l][1], layer->mutable_mlp());
    }
    SetCounts(total, b->mutable_total());
    b->set_grad_dtype(tuning_.tf32                          ? "tf32"
                      : tuning_.grad_dtype == at::kBFloat16 ? "bfloat16"
                                                            : "float32");
    b->set_blocks_mse_measured(measured);
    b->set_blocks_mse_not_worse(improved);
    b->set_gradient_seconds(grad);
    b->set_rebuild_seconds(rebuild);
    b->set_mse_seconds(mse);
    b->add_notes("swaps by index: group zero counts exact");
    b->add_notes("block loss = sum of squared errors (reference: mean; same ranking)");
    init_->Report(report);
  }

 private:
  v1::BarberOptions options_;
  std::unique_ptr<LayerPruner> init_;
  std::optional<BarberTuning> fixed_tuning_;
  BarberTuning tuning_;  // the last layer's
  std::vector<std::array<BarberBlockRecord, 2>> layers_;
};

}  // namespace

std::unique_ptr<LayerPruner> MakeBarberPruner(const v1::BarberOptions& options,
                                              std::unique_ptr<LayerPruner> init,
                                              std::optional<BarberTuning> tuning) {
  return std::make_unique<BarberPruner>(options, std::move(init), tuning);
}

}  // namespace prunerd
