#include "core/engine/llama_model.h"

#include <torch/version.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/torch_util.h"

namespace prunerd {

LayerWeights LayerWeights::To(const at::Device& device, at::ScalarType dtype) const {
  LayerWeights out;
  auto move = [&](const at::Tensor& t) {
    // copy=true: never alias the (possibly read-only, mmapped) host tensor.
    return t.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  };
  out.input_norm = move(input_norm);
  out.post_norm = move(post_norm);
  for (size_t i = 0; i < proj.size(); ++i) out.proj[i] = move(proj[i]);
  return out;
}

int64_t LayerWeights::Bytes() const {
  int64_t b =
      input_norm.numel() * input_norm.element_size() + post_norm.numel() * post_norm.element_size();
  for (const at::Tensor& t : proj) b += t.numel() * t.element_size();
  return b;
}

absl::StatusOr<LlamaModel> LoadLlama(std::shared_ptr<const Checkpoint> checkpoint) {
  LlamaModel m;
  m.config = checkpoint->config();
  m.checkpoint = checkpoint;
  auto get = [&](std::string_view name) -> absl::StatusOr<at::Tensor> {
    ASSIGN_OR_RETURN(TensorView v, checkpoint->Get(name));
    return AliasTensor(v);
  };
  ASSIGN_OR_RETURN(m.embed, get(kEmbedName));
  ASSIGN_OR_RETURN(m.final_norm, get(kFinalNormName));
  ASSIGN_OR_RETURN(m.lm_head, get(kLmHeadName));
  m.layers.resize(m.config.num_hidden_layers);
  for (int64_t i = 0; i < m.config.num_hidden_layers; ++i) {
    LayerWeights& l = m.layers[i];
    ASSIGN_OR_RETURN(l.input_norm, get(InputNormName(i)));
    ASSIGN_OR_RETURN(l.post_norm, get(PostAttnNormName(i)));
    for (Proj p : kAllProjs) {
      ASSIGN_OR_RETURN(l[p], get(ProjWeightName(i, p)));
    }
  }
  return m;
}

at::Tensor RopeInvFreq(const LlamaConfig& c) {
  const int64_t d = c.head_dim;
  // As transformers: base ** (arange(0, d, 2) / d) in fp32.
  at::Tensor exponent = at::arange(0, d, 2, at::kLong).to(at::kFloat) / static_cast<double>(d);
  at::Tensor inv_freq = 1.0 / at::pow(c.rope_theta, exponent);
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3) {
    const RopeScaling& s = c.rope_scaling;
    const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_ctx / s.low_freq_factor;
    const double high_wavelen = old_ctx / s.high_freq_factor;
    at::Tensor wavelen = 2.0 * M_PI / inv_freq;
    // Long wavelengths are divided by the factor, short ones kept, the band between smoothed.
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq);
    at::Tensor smooth =
        (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  }
  return inv_freq;
}

RopeCache MakeRope(const LlamaConfig& config, int64_t seqlen, const at::Device& device,
                   at::ScalarType dtype) {
  at::Tensor inv_freq = RopeInvFreq(config);                      // [d/2]
  at::Tensor pos = at::arange(seqlen, at::kLong).to(at::kFloat);  // [T]
  at::Tensor freqs = at::outer(pos, inv_freq);                    // [T, d/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);                   // [T, d]
  return RopeCache{emb.cos().to(device, dtype), emb.sin().to(device, dtype)};
}

namespace {

// softmax(q kᵀ / √d + causal) v; q [B, H, T, d], k/v [B, KV, T, d].
at::Tensor CausalAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           int64_t n_rep) {
#if TORCH_VERSION_MAJOR >= 2
  if (q.is_cuda()) {
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                            /*is_causal=*/true, /*scale=*/{},
                                            /*enable_gqa=*/n_rep > 1);
  }
#endif
  at::Tensor kk = n_rep > 1 ? k.repeat_interleave(n_rep, 1) : k;
  at::Tensor vv = n_rep > 1 ? v.repeat_interleave(n_rep, 1) : v;
  const int64_t t = q.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  at::Tensor scores = at::matmul(q, kk.transpose(2, 3)) * scale;
  at::Tensor mask =
      at::ones({t, t}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
  // Softmax in fp32 at least (fp64 stays fp64).
  scores = scores.to(at::promote_types(scores.scalar_type(), at::kFloat))
               .masked_fill(mask, -std::numeric_limits<float>::infinity());
  at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type());
  return at::matmul(probs, vv);
}

}  // namespace

at::Tensor Attention(const LayerWeights& w, const at::Tensor& xn, const RopeCache& rope,
                     const LlamaConfig& c, const TapFn* tap) {
  if (tap) (*tap)(Tap::kAttnIn, xn);
  const int64_t b = xn.size(0), t = xn.size(1);
  // Head counts from the weights, so structurally pruned layers work unchanged.
  const int64_t d = c.head_dim;
  const int64_t h = w[Proj::kQ].size(0) / d;
  const int64_t kv = w[Proj::kK].size(0) / d;
  // The rotary embedding in the projections' own layout [b, t, heads, d]; attention reads
  // [b, heads, t, d] views of it.
  at::Tensor q = RotaryEmbed(at::linear(xn, w[Proj::kQ]).view({b, t, h, d}), rope.cos, rope.sin)
                     .transpose(1, 2);
  at::Tensor k = RotaryEmbed(at::linear(xn, w[Proj::kK]).view({b, t, kv, d}), rope.cos, rope.sin)
                     .transpose(1, 2);
  at::Tensor v = at::linear(xn, w[Proj::kV]).view({b, t, kv, d}).transpose(1, 2);
  at::Tensor ctx = CausalAttention(q, k, v, h / kv);
  ctx = ctx.transpose(1, 2).reshape({b, t, h * d});
  if (tap) (*tap)(Tap::kAttnCtx, ctx);
  return at::linear(ctx, w[Proj::kO]);
}

at::Tensor Mlp(const LayerWeights& w, const at::Tensor& hn, const TapFn* tap, bool skip_down) {
  if (tap) (*tap)(Tap::kMlpIn, hn);
  at::Tensor act = SiluMul(at::linear(hn, w[Proj::kGate]), at::linear(hn, w[Proj::kUp]));
  if (tap) (*tap)(Tap::kMlpAct, act);
  if (skip_down) return at::Tensor();
  return at::linear(act, w[Proj::kDown]);
}

at::Tensor DecoderLayer(const LayerWeights& w, const at::Tensor& x, const RopeCache& rope,
                        const LlamaConfig& c, const TapFn* tap) {
  at::Tensor h = x + Attention(w, RmsNorm(x, w.input_norm, c.rms_norm_eps), rope, c, tap);
  return h + Mlp(w, RmsNorm(h, w.post_norm, c.rms_norm_eps), tap);
}

at::Tensor Embed(const LlamaModel& model, const at::Tensor& tokens, const at::Device& device,
                 at::ScalarType dtype) {
  const at::Tensor table = model.embed.to(device, dtype);
  at::Tensor rows = at::index_select(table, 0, tokens.reshape({-1}).to(device));
  return rows.view({tokens.size(0), tokens.size(1), model.embed.size(1)});
}

}  // namespace prunerd
