#include "core/methods/transact.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/torch_util.h"
#include "core/methods/layer_pruner.h"

namespace prunerd {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// d - floor(ratio·d) as the reference computes it (Python's int(r * d), a truncation of the
// double product): the dim left after removing at most `ratio` of it.
int64_t KeptByRatio(int64_t d, double ratio) {
  return d - static_cast<int64_t>(ratio * static_cast<double>(d));
}

std::vector<double> ToDoubles(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

at::Tensor IndexTensor(const std::vector<int64_t>& idx, const at::Device& device) {
  return at::tensor(idx, at::kLong).to(device);
}

// Calls on_layer(l, device weights, Σa² of o_proj's input, Σa² of down_proj's input) for every
// layer of the current model, after the layer has seen every calibration window; the layer's
// outputs (computed with the weights as they were before on_layer) feed the next layer.
// after_layer(l) returning false cancels.
using OnLayer =
    std::function<absl::Status(int64_t, const LayerWeights&, const at::Tensor&, const at::Tensor&)>;

absl::Status StreamLayers(const LlamaModel& model, const at::Tensor& tokens,
                          const ForwardOptions& fwd, StageTimer& timer, const OnLayer& on_layer,
                          const std::function<bool(int64_t)>& after_layer) {
  c10::InferenceMode inference;
  const LlamaConfig& c = model.config;
  const int64_t n = tokens.size(0), t = tokens.size(1);
  const int64_t batch = AutoBatch(fwd.batch_size, t, fwd.device);
  at::Tensor hidden;
  timer.Time("embed", [&] { hidden = Embed(model, tokens, fwd.device, fwd.dtype); });
  const RopeCache rope = MakeRope(c, t, fwd.device, fwd.dtype);
  const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat).device(fwd.device);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights w;
    timer.Time("load", [&] { w = model.layers[l].To(fwd.device, fwd.dtype); });
    at::Tensor attn_sq = at::zeros({w[Proj::kO].size(1)}, f32);
    at::Tensor mlp_sq = at::zeros({w[Proj::kDown].size(1)}, f32);
    const TapFn tap = [&](Tap which, const at::Tensor& a) {
      if (which == Tap::kAttnCtx) AccumulateChannelSquares(attn_sq, a);
      if (which == Tap::kMlpAct) AccumulateChannelSquares(mlp_sq, a);
    };
    const bool last = l + 1 == c.num_hidden_layers;  // its outputs feed nothing
    timer.Time("score", [&] {
      for (int64_t b0 = 0; b0 < n; b0 += batch) {
        at::Tensor x = hidden.narrow(0, b0, std::min(batch, n - b0));
        at::Tensor h = x + Attention(w, RmsNorm(x, w.input_norm, c.rms_norm_eps), rope, c, &tap);
        at::Tensor out = Mlp(w, RmsNorm(h, w.post_norm, c.rms_norm_eps), &tap, last);
        if (!last) x.copy_(h + out);
      }
    });
    RETURN_IF_ERROR(on_layer(l, w, attn_sq, mlp_sq));
    if (after_layer && !after_layer(l)) {
      return absl::CancelledError(
          absl::StrCat("cancelled after layer ", l + 1, " of ", c.num_hidden_layers));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTokens(const LlamaModel& model, const at::Tensor& tokens) {
  if (!tokens.defined() || tokens.dim() != 2 || tokens.scalar_type() != at::kLong ||
      tokens.size(0) < 1 || tokens.size(1) < 1) {
    return absl::InvalidArgumentError(
        "transact: calibration tokens must be a non-empty [N, T] "
        "int64 tensor");
  }
  if (tokens.size(1) > model.config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("transact: calibration seqlen ", tokens.size(1),
                                                   " exceeds max_position_embeddings ",
                                                   model.config.max_position_embeddings));
  }
  return absl::OkStatus();
}

// The L2 scores on the CPU in double, or FailedPrecondition when the forward produced NaN/inf.
absl::StatusOr<std::vector<double>> FiniteScores(const at::Tensor& sq, int64_t layer,
                                                 const char* what) {
  std::vector<double> s = ToDoubles(sq);
  for (double& v : s) {
    if (!std::isfinite(v)) {
      return absl::FailedPreconditionError(
          absl::StrCat("transact: layer ", layer, ": non-finite activation scores at ", what,
                       " (the forward pass overflowed; try dtype float32 or bfloat16)"));
    }
    v = std::sqrt(v);
  }
  return s;
}

// The kept rows/columns of one layer, as new host tensors in the model's storage dtype. Each
// projection is sliced from the device copy when it is in the storage dtype (exact, and cheap
// on a GPU), else from the host tensor (the device copy was converted, e.g. fp16 → fp32).
LayerWeights SliceLayer(const LayerWeights& host, const LayerWeights& dev,
                        const std::vector<int64_t>& q_rows, const std::vector<int64_t>& kv_rows,
                        const std::vector<int64_t>& mlp, StageTimer& timer) {
  LayerWeights out;
  out.input_norm = host.input_norm;  // norms never change
  out.post_norm = host.post_norm;
  std::array<at::Tensor, 7> sliced;
  timer.Time("slice", [&] {
    for (Proj p : kAllProjs) {
      const at::Tensor& src = dev[p].scalar_type() == host[p].scalar_type() ? dev[p] : host[p];
      const std::vector<int64_t>& idx = (p == Proj::kQ || p == Proj::kO)   ? q_rows
                                        : (p == Proj::kK || p == Proj::kV) ? kv_rows
                                                                           : mlp;
      const int64_t dim = (p == Proj::kO || p == Proj::kDown) ? 1 : 0;
      sliced[static_cast<size_t>(p)] = src.index_select(dim, IndexTensor(idx, src.device()));
    }
  });
  timer.Time("store", [&] {
    for (Proj p : kAllProjs) {
      const at::Tensor& s = sliced[static_cast<size_t>(p)];
      out[p] = s.to(at::kCPU, host[p].scalar_type(), /*non_blocking=*/false, /*copy=*/false)
                   .contiguous();
    }
  });
  return out;
}

std::vector<int64_t> Compose(const std::vector<int64_t>& map, const std::vector<int64_t>& keep) {
  std::vector<int64_t> out;
  out.reserve(keep.size());
  for (int64_t k : keep) out.push_back(map[k]);
  return out;
}

std::vector<int64_t> Iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

void FillDims(const LlamaConfig& c, v1::ModelDims* d) {
  d->set_attention_heads(c.num_attention_heads);
  d->set_kv_heads(c.num_key_value_heads);
  d->set_head_dim(c.head_dim);
  d->set_attn_dim(c.q_dim());
  d->set_intermediate_size(c.intermediate_size);
  d->set_parameters(c.NumParameters());
  d->set_kv_cache_values_per_token(c.KvCacheValuesPerToken());
  d->set_kv_cache_values_per_token_per_layer(2 * c.kv_dim());
}

}  // namespace

// ---- Pure functions ---------------------------------------------------------------------

int64_t ScheduleStep(int64_t cur, int64_t target, int shot, int shots) {
  if (cur <= target) return cur;
  const int64_t remaining = std::max(1, shots - shot + 1);
  return cur - (cur - target) / remaining;  // both non-negative: integer division is floor
}

std::vector<int64_t> DimSchedule(int64_t dense, int64_t target, int shots, int64_t unit) {
  std::vector<int64_t> out;
  int64_t cur = dense;
  for (int shot = 1; shot <= shots; ++shot) {
    cur = CeilDiv(ScheduleStep(cur, target, shot, shots), unit) * unit;
    out.push_back(cur);
  }
  return out;
}

std::vector<double> HeadScores(const std::vector<double>& s, int64_t head_dim) {
  const double alpha = 10.0 / static_cast<double>(head_dim);
  const int64_t heads = static_cast<int64_t>(s.size()) / head_dim;
  std::vector<double> h(heads);
  for (int64_t i = 0; i < heads; ++i) {
    const double* c = s.data() + i * head_dim;
    double sum = 0, mx = c[0];
    for (int64_t j = 0; j < head_dim; ++j) {
      sum += c[j];
      mx = std::max(mx, c[j]);
    }
    h[i] = sum / static_cast<double>(head_dim) + alpha * mx;
  }
  return h;
}

std::vector<int64_t> TopKSorted(const std::vector<double>& scores, int64_t k) {
  std::vector<int64_t> idx = Iota(static_cast<int64_t>(scores.size()));
  k = std::clamp<int64_t>(k, 0, static_cast<int64_t>(idx.size()));
  // Stable: equal scores keep ascending index order, so the lower index wins a tie.
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<int64_t> HeadChannels(const std::vector<int64_t>& heads, int64_t head_dim) {
  std::vector<int64_t> out;
  out.reserve(heads.size() * head_dim);
  for (int64_t h : heads) {
    for (int64_t j = 0; j < head_dim; ++j) out.push_back(h * head_dim + j);
  }
  return out;
}

int64_t AttnUnitHeads(int64_t heads, int64_t kv_heads, v1::GqaMode mode) {
  if (kv_heads == heads) return 1;
  return mode == v1::GQA_MODE_KV_GROUPS ? heads / kv_heads : kv_heads;
}

HeadSelection SelectHeads(const std::vector<double>& h, int64_t kv_heads, int64_t keep_q_heads,
                          v1::GqaMode mode) {
  const int64_t heads = static_cast<int64_t>(h.size());
  const int64_t rep = heads / kv_heads;  // query heads per KV head
  HeadSelection sel;
  if (rep == 1) {
    sel.q_heads = TopKSorted(h, keep_q_heads);
    sel.kv_heads = sel.q_heads;
  } else if (mode == v1::GQA_MODE_KV_GROUPS) {
    std::vector<double> group(kv_heads, 0.0);
    for (int64_t i = 0; i < heads; ++i) group[i / rep] += h[i];
    sel.kv_heads = TopKSorted(group, keep_q_heads / rep);
    for (int64_t g : sel.kv_heads) {
      for (int64_t j = 0; j < rep; ++j) sel.q_heads.push_back(g * rep + j);
    }
  } else {
    const int64_t per_group = keep_q_heads / kv_heads;
    sel.kv_heads = Iota(kv_heads);
    for (int64_t g = 0; g < kv_heads; ++g) {
      std::vector<double> local(h.begin() + g * rep, h.begin() + (g + 1) * rep);
      for (int64_t j : TopKSorted(local, per_group)) sel.q_heads.push_back(g * rep + j);
    }
  }
  return sel;
}

absl::StatusOr<std::vector<TransActDims>> PlanTransAct(const LlamaConfig& c,
                                                       const v1::TransActOptions& o) {
  const int64_t heads = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t q_dim = heads * hd, dff = c.intermediate_size;
  if (o.shots() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("transact.shots: must be >= 1, got ", o.shots()));
  }
  if (o.attn_dim() > q_dim) {
    return absl::InvalidArgumentError(absl::StrCat("transact.attn_dim: ", o.attn_dim(),
                                                   " exceeds the model's attention dim ", q_dim,
                                                   " (", heads, " heads x ", hd, ")"));
  }
  if (o.mlp_dim() > dff) {
    return absl::InvalidArgumentError(absl::StrCat("transact.mlp_dim: ", o.mlp_dim(),
                                                   " exceeds the model's intermediate_size ", dff));
  }
  if (o.attn_dim() < 0 || o.mlp_dim() < 0 || !(o.attn_ratio() >= 0 && o.attn_ratio() < 1) ||
      !(o.mlp_ratio() >= 0 && o.mlp_ratio() < 1)) {
    return absl::InvalidArgumentError("transact: ratios must be in [0, 1) and dims >= 0");
  }
  const int64_t unit = AttnUnitHeads(heads, kv, o.gqa_mode());
  const int64_t attn_target = o.attn_dim() > 0 ? o.attn_dim() : KeptByRatio(q_dim, o.attn_ratio());
  const int64_t target_heads = std::clamp<int64_t>(
      CeilDiv(std::max<int64_t>(attn_target, 1), unit * hd) * unit, unit, heads);
  const int64_t mlp_target =
      std::clamp<int64_t>(o.mlp_dim() > 0 ? o.mlp_dim() : KeptByRatio(dff, o.mlp_ratio()), 1, dff);
  const std::vector<int64_t> attn = DimSchedule(q_dim, target_heads * hd, o.shots(), unit * hd);
  const std::vector<int64_t> mlp = DimSchedule(dff, mlp_target, o.shots(), 1);
  std::vector<TransActDims> plan;
  for (int s = 0; s < o.shots(); ++s) {
    TransActDims d;
    d.heads = attn[s] / hd;
    d.kv_heads = kv == heads                              ? d.heads
                 : o.gqa_mode() == v1::GQA_MODE_KV_GROUPS ? d.heads / (heads / kv)
                                                          : kv;
    d.intermediate = mlp[s];
    plan.push_back(d);
  }
  return plan;
}

// ---- Scoring ----------------------------------------------------------------------------

void AccumulateChannelSquares(at::Tensor& acc, const at::Tensor& a) {
  at::Tensor flat = a.reshape({-1, a.size(-1)});
  at::Tensor sq;
  if (flat.scalar_type() == at::kFloat) {
    sq = flat.square();  // never in place: `a` is still used by the forward
  } else {
    sq = flat.to(at::kFloat);
    sq.square_();  // a fresh fp32 copy
  }
  acc.add_(sq.sum(0));
}

absl::StatusOr<ActivationScores> ScoreActivations(const LlamaModel& model, const at::Tensor& tokens,
                                                  const ForwardOptions& fwd,
                                                  const LayerProgress& progress) {
  RETURN_IF_ERROR(CheckTokens(model, tokens));
  ActivationScores out;
  StageTimer timer(fwd.device);
  const int64_t layers = model.config.num_hidden_layers;
  RETURN_IF_ERROR(StreamLayers(
      model, tokens, fwd, timer,
      [&](int64_t, const LayerWeights&, const at::Tensor& attn_sq, const at::Tensor& mlp_sq) {
        out.attn.push_back(attn_sq.sqrt().cpu());
        out.mlp.push_back(mlp_sq.sqrt().cpu());
        return absl::OkStatus();
      },
      [&](int64_t l) { return !progress || progress(l, layers); }));
  return out;
}

// ---- Pruning ----------------------------------------------------------------------------

absl::StatusOr<v1::TransActReport> TransActPrune(LlamaModel& model, const at::Tensor& calib_tokens,
                                                 const v1::TransActOptions& options,
                                                 const ForwardOptions& fwd,
                                                 const LayerProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(CheckTokens(model, calib_tokens));
  const LlamaConfig dense = model.config;
  ASSIGN_OR_RETURN(std::vector<TransActDims> plan, PlanTransAct(dense, options));
  const int64_t layers = dense.num_hidden_layers, hd = dense.head_dim;
  const int shots = options.shots();
  ResetDevicePeak(fwd.device);

  // Kept indices in the dense model's numbering, per layer, as of the last completed shot.
  std::vector<std::vector<int64_t>> q_map(layers, Iota(dense.num_attention_heads));
  std::vector<std::vector<int64_t>> kv_map(layers, Iota(dense.num_key_value_heads));
  std::vector<std::vector<int64_t>> mlp_map(layers, Iota(dense.intermediate_size));

  StageTimer timer(fwd.device);
  v1::TransActReport report;
  for (int s = 0; s < shots; ++s) {
    const auto shot_start = std::chrono::steady_clock::now();
    const TransActDims& d = plan[s];
    std::vector<LayerWeights> next(layers);
    std::vector<HeadSelection> sel(layers);
    std::vector<std::vector<int64_t>> mlp_keep(layers);
    auto on_layer = [&](int64_t l, const LayerWeights& w, const at::Tensor& attn_sq,
                        const at::Tensor& mlp_sq) -> absl::Status {
      absl::StatusOr<std::vector<double>> attn, mlp;
      timer.Time("select", [&] {
        attn = FiniteScores(attn_sq, l, "o_proj's input");
        mlp = FiniteScores(mlp_sq, l, "down_proj's input");
        if (!attn.ok() || !mlp.ok()) return;
        const int64_t kv_now = w[Proj::kK].size(0) / hd;
        sel[l] = SelectHeads(HeadScores(*attn, hd), kv_now, d.heads, options.gqa_mode());
        mlp_keep[l] = TopKSorted(*mlp, d.intermediate);
      });
      RETURN_IF_ERROR(attn.status());
      RETURN_IF_ERROR(mlp.status());
      next[l] = SliceLayer(model.layers[l], w, HeadChannels(sel[l].q_heads, hd),
                           HeadChannels(sel[l].kv_heads, hd), mlp_keep[l], timer);
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(StreamLayers(model, calib_tokens, fwd, timer, on_layer, [&](int64_t l) {
      return !progress || progress(s * layers + l, shots * layers);
    }));
    // Commit the shot: layers, config and index maps together.
    model.layers = std::move(next);
    model.config.num_attention_heads = d.heads;
    model.config.num_key_value_heads = d.kv_heads;
    model.config.intermediate_size = d.intermediate;
    for (int64_t l = 0; l < layers; ++l) {
      q_map[l] = Compose(q_map[l], sel[l].q_heads);
      kv_map[l] = Compose(kv_map[l], sel[l].kv_heads);
      mlp_map[l] = Compose(mlp_map[l], mlp_keep[l]);
    }
    v1::TransActShot* shot = report.add_shots();
    shot->set_shot(s + 1);
    shot->set_attention_heads(d.heads);
    shot->set_kv_heads(d.kv_heads);
    shot->set_attn_dim(d.heads * hd);
    shot->set_intermediate_size(d.intermediate);
    shot->set_seconds(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - shot_start).count());
  }
  RETURN_IF_ERROR(Annotate(model.config.Validate(), "transact: sliced config"));

  const bool gqa = dense.num_key_value_heads != dense.num_attention_heads;
  const int64_t unit =
      AttnUnitHeads(dense.num_attention_heads, dense.num_key_value_heads, options.gqa_mode());
  const bool with_mlp = layers * model.config.intermediate_size <= 65536;
  for (int64_t l = 0; l < layers; ++l) {
    v1::TransActLayer* layer = report.add_layers();
    layer->set_layer(l);
    layer->mutable_q_heads()->Add(q_map[l].begin(), q_map[l].end());
    layer->mutable_kv_heads()->Add(kv_map[l].begin(), kv_map[l].end());
    if (with_mlp) layer->mutable_mlp_channels()->Add(mlp_map[l].begin(), mlp_map[l].end());
  }
  report.set_mlp_channels_omitted(!with_mlp);
  report.set_gqa(gqa);
  report.set_gqa_mode(options.gqa_mode());
  report.set_attention_unit_heads(unit);
  FillDims(dense, report.mutable_dense());
  FillDims(model.config, report.mutable_pruned());
  report.set_calibration_tokens(calib_tokens.numel());
  report.set_batch(AutoBatch(fwd.batch_size, calib_tokens.size(1), fwd.device));
  for (const auto& [name, secs] : timer.seconds()) (*report.mutable_stage_seconds())[name] = secs;
  report.set_seconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  report.set_peak_device_bytes(DevicePeakBytes(fwd.device));
  return report;
}

}  // namespace prunerd
