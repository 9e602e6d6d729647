#include "core/methods/barber_gradients.h"

#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

namespace prunerd {
namespace {

// Autograd on, inference mode off, whatever the caller set.
struct GradScope {
  c10::InferenceMode no_inference{false};
  at::AutoGradMode grad{true};
};

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// The rotary embedding as one kernel each way on the GPU in fp16/bf16: the forward rotation, and
// its transpose (the inverse rotation) for the gradient, instead of autograd over five ops.
struct RotaryFunction : public torch::autograd::Function<RotaryFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& cos, const at::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return RotaryEmbed(x.contiguous(), cos, sin);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    return {RotaryEmbed(grad[0].contiguous(), saved[0], saved[1], /*inverse=*/true), at::Tensor(),
            at::Tensor()};
  }
};

// x [b, t, heads, d] → rotated, differentiable.
at::Tensor ApplyRope(const at::Tensor& x, const RopeCache& rope) {
  if (FusedFor(x)) return RotaryFunction::apply(x, rope.cos, rope.sin);
  // Elsewhere the formula the reference runs (and its rounding).
  const int64_t t = x.size(1);
  const at::Tensor cos = rope.cos.narrow(0, 0, t).unsqueeze(1), sin = rope.sin.narrow(0, 0, t).unsqueeze(1);
  return x * cos + RotateHalf(x) * sin;
}

double SquaredError(const at::Tensor& y, const at::Tensor& target_f32) {
  return (y.to(at::kFloat) - target_f32).pow(2).sum().item<double>();
}

}  // namespace

at::Tensor AttentionContext(const at::Tensor& yq, const at::Tensor& yk, const at::Tensor& yv,
                            const RopeCache& rope, const LlamaConfig& c) {
  const int64_t b = yq.size(0), t = yq.size(1), d = c.head_dim;
  const int64_t h = yq.size(2) / d, kv = yk.size(2) / d;
  at::Tensor q = ApplyRope(yq.view({b, t, h, d}), rope).transpose(1, 2);
  at::Tensor k = ApplyRope(yk.view({b, t, kv, d}), rope).transpose(1, 2);
  at::Tensor v = yv.view({b, t, kv, d}).transpose(1, 2);
  if (h != kv) {  // GQA: expand the KV heads (the backward sums over the copies)
    k = k.repeat_interleave(h / kv, 1);
    v = v.repeat_interleave(h / kv, 1);
  }
  at::Tensor ctx;
#if TORCH_VERSION_MAJOR >= 2
  if (q.is_cuda()) {
    ctx = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                           /*is_causal=*/true);
  }
#endif
  if (!ctx.defined()) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)) * scale;
    at::Tensor mask =
        at::ones({t, t}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
    // Softmax in fp32 at least (fp64 stays fp64).
    scores = scores.to(at::promote_types(scores.scalar_type(), at::kFloat))
                 .masked_fill(mask, -std::numeric_limits<float>::infinity());
    ctx = at::matmul(at::softmax(scores, -1).to(q.scalar_type()), v);
  }
  return ctx.transpose(1, 2).reshape({b, t, h * d});
}

void AddPerSequenceGradSq(const at::Tensor& dy, const at::Tensor& x, at::Tensor& acc) {
  at::NoGradGuard no_grad;
  const at::Tensor xs = x.to(dy.scalar_type());
  at::Tensor g = at::empty({dy.size(2), xs.size(2)}, dy.options());
  for (int64_t s = 0; s < dy.size(0); ++s) {
    at::mm_out(g, dy.select(0, s).t(), xs.select(0, s));  // G_s = dY_sᵀ X_s
    const at::Tensor gf = g.scalar_type() == at::kFloat ? g : g.to(at::kFloat);
    acc.addcmul_(gf, gf);
  }
}

double AttentionBlockError(const LayerWeights& dense, const at::Tensor& xn,
                           const at::Tensor& y_sparse, const RopeCache& rope, const LlamaConfig& c,
                           std::array<at::Tensor, 4>* grad_sq) {
  GradScope scope;
  const at::ScalarType dt = dense[Proj::kQ].scalar_type();
  const at::Tensor x = xn.to(dt);
  const at::Tensor target = y_sparse.to(at::kFloat);
  at::Tensor yq, yk, yv;
  {
    at::NoGradGuard no_grad;
    yq = at::linear(x, dense[Proj::kQ]);
    yk = at::linear(x, dense[Proj::kK]);
    yv = at::linear(x, dense[Proj::kV]);
    if (grad_sq == nullptr) {
      return SquaredError(at::linear(AttentionContext(yq, yk, yv, rope, c), dense[Proj::kO]),
                          target);
    }
  }
  yq.requires_grad_(true);
  yk.requires_grad_(true);
  yv.requires_grad_(true);
  at::Tensor ctx = AttentionContext(yq, yk, yv, rope, c);
  at::Tensor yo = at::linear(ctx, dense[Proj::kO]);
  at::Tensor loss = (yo.to(at::kFloat) - target).pow(2).sum();
  torch::autograd::variable_list dy = torch::autograd::grad({loss}, {yq, yk, yv, yo});
  const double value = loss.item<double>();
  AddPerSequenceGradSq(dy[0], x, (*grad_sq)[0]);
  AddPerSequenceGradSq(dy[1], x, (*grad_sq)[1]);
  AddPerSequenceGradSq(dy[2], x, (*grad_sq)[2]);
  AddPerSequenceGradSq(dy[3], ctx.detach(), (*grad_sq)[3]);
  return value;
}

double MlpBlockError(const LayerWeights& dense, const at::Tensor& hn, const at::Tensor& z_sparse,
                     std::array<at::Tensor, 3>* grad_sq) {
  GradScope scope;
  const at::ScalarType dt = dense[Proj::kGate].scalar_type();
  const at::Tensor x = hn.to(dt);
  const at::Tensor target = z_sparse.to(at::kFloat);
  at::Tensor yg, yu;
  {
    at::NoGradGuard no_grad;
    yg = at::linear(x, dense[Proj::kGate]);
    yu = at::linear(x, dense[Proj::kUp]);
    if (grad_sq == nullptr) {
      return SquaredError(at::linear(at::silu(yg) * yu, dense[Proj::kDown]), target);
    }
  }
  yg.requires_grad_(true);
  yu.requires_grad_(true);
  at::Tensor act = at::silu(yg) * yu;
  at::Tensor yd = at::linear(act, dense[Proj::kDown]);
  at::Tensor loss = (yd.to(at::kFloat) - target).pow(2).sum();
  torch::autograd::variable_list dy = torch::autograd::grad({loss}, {yg, yu, yd});
  const double value = loss.item<double>();
  AddPerSequenceGradSq(dy[0], x, (*grad_sq)[0]);
  AddPerSequenceGradSq(dy[1], x, (*grad_sq)[1]);
  AddPerSequenceGradSq(dy[2], act.detach(), (*grad_sq)[2]);
  return value;
}

double LinearBlockError(const at::Tensor& w_dense, const at::Tensor& x, const at::Tensor& y_sparse,
                        at::Tensor* grad_sq) {
  GradScope scope;
  const at::Tensor xx = x.to(w_dense.scalar_type());
  const at::Tensor target = y_sparse.to(at::kFloat);
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    y = at::linear(xx, w_dense);
    if (grad_sq == nullptr) return SquaredError(y, target);
  }
  y.requires_grad_(true);
  at::Tensor loss = (y.to(at::kFloat) - target).pow(2).sum();
  torch::autograd::variable_list dy = torch::autograd::grad({loss}, {y});
  AddPerSequenceGradSq(dy[0], xx, *grad_sq);
  return loss.item<double>();
}

at::Tensor BarberScores(const at::Tensor& w_dense, const at::Tensor& grad_sq_sum, int64_t sequences,
                        v1::BarberMetric metric) {
  at::NoGradGuard no_grad;
  if (metric == v1::BARBER_METRIC_W) return w_dense.abs().to(at::kFloat);
  at::Tensor rms = (grad_sq_sum / static_cast<double>(std::max<int64_t>(1, sequences))).sqrt();
  if (metric == v1::BARBER_METRIC_D) return rms;
  return w_dense.abs().to(at::kFloat) * rms;
}

}  // namespace prunerd
