// The fused formulas of fused_ops.h. Oracles: the textbook formulas in fp64 (rotary embedding and
// its inverse as the transpose, via autograd), and on a CUDA build run with
// PRUNERD_TEST_DEVICE=cuda, ATen's unfused ops on the same inputs in fp16 and bf16 (within one
// rounding of the dtype).
#include "core/engine/fused_ops.h"

#include <torch/csrc/autograd/autograd.h>

#include <string>

#include "core/testing/test_data.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x [b, t, h, d]; cos/sin [t, d] as transformers builds them.
at::Tensor TextbookRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t t = x.size(1);
  return x * cos.narrow(0, 0, t).unsqueeze(1) + RotateHalf(x) * sin.narrow(0, 0, t).unsqueeze(1);
}

std::pair<at::Tensor, at::Tensor> CosSin(int64_t t, int64_t d, at::TensorOptions opts) {
  at::Tensor inv = 1.0 / at::pow(10000.0, at::arange(0, d, 2, at::kDouble) / double(d));
  at::Tensor f = at::outer(at::arange(t, at::kDouble), inv);
  at::Tensor emb = at::cat({f, f}, -1);
  return {emb.cos().to(opts), emb.sin().to(opts)};
}

TEST(FusedOpsTest, RotaryEmbedIsTheTextbookRotation) {
  at::manual_seed(0);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  auto [cos, sin] = CosSin(7, 8, opts);
  at::Tensor x = at::randn({2, 5, 3, 8}, opts);  // seqlen 5 of a 7-position cache
  const at::Tensor y = RotaryEmbed(x, cos, sin);
  EXPECT_LT((y - TextbookRope(x, cos, sin)).abs().max().item<double>(), 1e-14);
  // A rotation keeps each (x_j, x_{j+d/2}) pair's norm, and the inverse undoes it.
  EXPECT_LT((y.pow(2).sum(-1) - x.pow(2).sum(-1)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((RotaryEmbed(y, cos, sin, /*inverse=*/true) - x).abs().max().item<double>(), 1e-14);
}

TEST(FusedOpsTest, InverseRotaryEmbedIsTheGradient) {
  at::manual_seed(1);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  auto [cos, sin] = CosSin(6, 4, opts);
  at::Tensor x = at::randn({2, 6, 2, 4}, opts).requires_grad_(true);
  at::Tensor g = at::randn({2, 6, 2, 4}, opts);
  at::Tensor loss = (TextbookRope(x, cos, sin) * g).sum();
  at::Tensor dx = torch::autograd::grad({loss}, {x})[0];
  EXPECT_LT((RotaryEmbed(g, cos, sin, /*inverse=*/true) - dx).abs().max().item<double>(), 1e-14);
}

// Largest |a - b| over the elements in units of the dtype's rounding step of `scale` (by default
// |b|; for sums that can cancel, the size of the terms).
double UlpError(const at::Tensor& a, const at::Tensor& b, double eps,
                at::Tensor scale = at::Tensor()) {
  at::Tensor bf = b.to(at::kDouble), af = a.to(at::kDouble);
  if (!scale.defined()) scale = bf.abs();
  return ((af - bf).abs() / (scale.to(at::kDouble) * eps + 1e-30)).max().item<double>();
}

class FusedKernelTest : public ::testing::TestWithParam<at::ScalarType> {
 protected:
  void SetUp() override {
    if (TestDevice() != "cuda" || !FusedKernelsBuilt()) {
      GTEST_SKIP() << "the CUDA kernels need a CUDA build and PRUNERD_TEST_DEVICE=cuda";
    }
  }
  at::TensorOptions Opts() const { return at::TensorOptions().dtype(GetParam()).device(at::kCUDA); }
  // One rounding step of the dtype, relative.
  double Eps() const {
    return GetParam() == at::kHalf ? 1.0 / 1024 : 1.0 / 128;
  }
};

TEST_P(FusedKernelTest, RotaryEmbedMatchesAten) {
  at::manual_seed(2);
  // head_dim 128 (16-byte vectors), 8 (stories260K), 6 (scalar path); GQA-sized head counts.
  for (auto [b, t, h, d] : {std::array<int64_t, 4>{2, 64, 4, 128}, {3, 17, 2, 8}, {1, 9, 3, 6}}) {
    auto [cos, sin] = CosSin(t + 3, d, Opts());
    at::Tensor x = at::randn({b, t, h, d}, Opts());
    for (bool inverse : {false, true}) {
      const at::Tensor fused = RotaryEmbed(x, cos, sin, inverse);
      const at::Tensor aten = RotaryEmbed(x, cos, sin, inverse, /*allow_fused=*/false);
      ASSERT_EQ(fused.sizes(), aten.sizes());
      // One rounding of the terms at most (a contracted multiply-add), never more.
      const at::Tensor terms = x.abs().to(at::kDouble) + RotateHalf(x).abs().to(at::kDouble);
      EXPECT_LE(UlpError(fused, aten, Eps(), terms), 1.01) << "d=" << d << " inverse=" << inverse;
      const double same = fused.eq(aten).to(at::kDouble).mean().item<double>();
      EXPECT_GT(same, 0.9) << "d=" << d;
    }
  }
}

TEST_P(FusedKernelTest, SiluMulMatchesAten) {
  at::manual_seed(3);
  for (int64_t n : {int64_t{4} * 11008, int64_t{3} * 172, int64_t{7}}) {
    at::Tensor g = at::randn({n}, Opts()) * 3, u = at::randn({n}, Opts());
    const at::Tensor fused = SiluMul(g, u), aten = SiluMul(g, u, /*allow_fused=*/false);
    EXPECT_LE(UlpError(fused, aten, Eps()), 1.01) << "n=" << n;
  }
}

TEST_P(FusedKernelTest, RmsNormMatchesAten) {
  at::manual_seed(4);
  for (auto [rows, n] : {std::array<int64_t, 2>{300, 4096}, {5, 64}, {4, 30}}) {
    at::Tensor x = at::randn({rows, n}, Opts()) * 2, w = at::rand({n}, Opts()) + 0.5;
    const at::Tensor fused = RmsNorm(x, w, 1e-5), aten = RmsNorm(x, w, 1e-5, false);
    // The mean square is summed in another order: the scale may differ in its last fp32 bits,
    // which can move each of the two rounded products by one step of the dtype.
    EXPECT_LE(UlpError(fused, aten, Eps()), 2.01) << "n=" << n;
  }
}

std::string DTypeName(const ::testing::TestParamInfo<at::ScalarType>& info) {
  return std::string(c10::toString(info.param));
}

INSTANTIATE_TEST_SUITE_P(DTypes, FusedKernelTest,
                         ::testing::Values(at::kHalf, at::kBFloat16), DTypeName);

}  // namespace
}  // namespace prunerd
