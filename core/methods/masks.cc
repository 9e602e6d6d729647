#include "core/methods/masks.h"

namespace prunerd {

at::Tensor LowestPerRow(const at::Tensor& scores, int64_t count) {
  at::Tensor mask = at::zeros_like(scores, at::TensorOptions().dtype(at::kBool));
  if (count <= 0) return mask;
  at::Tensor idx = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/1, /*descending=*/false));
  mask.scatter_(1, idx.narrow(1, 0, count), true);
  return mask;
}

at::Tensor LowestPerMatrix(const at::Tensor& scores, int64_t count) {
  at::Tensor flat_mask = at::zeros({scores.numel()}, scores.options().dtype(at::kBool));
  if (count > 0) {
    at::Tensor idx = std::get<1>(at::sort(scores.reshape({-1}), /*stable=*/true, /*dim=*/0, false));
    flat_mask.index_fill_(0, idx.narrow(0, 0, count), true);
  }
  return flat_mask.view(scores.sizes());
}

at::Tensor NMMask(const at::Tensor& scores, int64_t n, int64_t m) {
  const int64_t rows = scores.size(0), cols = scores.size(1);
  at::Tensor grouped = scores.reshape({rows, cols / m, m});
  at::Tensor idx = std::get<1>(at::sort(grouped, /*stable=*/true, /*dim=*/2, false));
  at::Tensor mask = at::zeros_like(grouped, grouped.options().dtype(at::kBool));
  mask.scatter_(2, idx.narrow(2, 0, n), true);
  return mask.view({rows, cols});
}

void ApplyMask(at::Tensor& w, const at::Tensor& mask) { w.masked_fill_(mask, 0); }

}  // namespace prunerd
