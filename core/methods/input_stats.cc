#include "core/methods/input_stats.h"

namespace prunerd {

Tap InputTapOf(Proj p) {
  switch (p) {
    case Proj::kQ:
    case Proj::kK:
    case Proj::kV:
      return Tap::kAttnIn;
    case Proj::kO:
      return Tap::kAttnCtx;
    case Proj::kGate:
    case Proj::kUp:
      return Tap::kMlpIn;
    case Proj::kDown:
      return Tap::kMlpAct;
  }
  return Tap::kAttnIn;
}

InputStats InputStats::Collect(const LayerContext& ctx, bool with_gram) {
  InputStats s;
  ctx.RunTaps([&](Tap tap, const at::Tensor& x) {
    const size_t i = static_cast<size_t>(tap);
    at::Tensor flat = x.reshape({-1, x.size(-1)});
    if (tap == Tap::kAttnIn) s.tokens += flat.size(0);
    // ‖x_j‖² in fp32. On CUDA one fused reduction straight from the compute dtype: the fp32 copy
    // and its square cost ~3.6 s of a 7B Wanda job on an H100. On the CPU, torch.sum's cascade
    // summation: the CPU column norm accumulates sequentially, and its rounding moved 0.04% of
    // prose16M's Wanda mask away from the fp64 reference's.
    at::Tensor sq = flat.is_cuda()
                        ? at::linalg_vector_norm(flat, 2, {0}, false, at::kFloat).square_()
                        : flat.to(at::kFloat).pow(2).sum(0);
    if (!s.sq_sum[i].defined()) {
      s.sq_sum[i] = sq;
    } else {
      s.sq_sum[i].add_(sq);
    }
    if (with_gram) {
      at::Tensor xf = flat.to(at::kFloat);
      if (!s.gram[i].defined()) {
        s.gram[i] = at::zeros({xf.size(1), xf.size(1)}, xf.options());
      }
      s.gram[i].addmm_(xf.t(), xf);
    }
  });
  return s;
}

}  // namespace prunerd
