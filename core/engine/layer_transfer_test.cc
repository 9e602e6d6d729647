// LayerTransfer on the test device ($PRUNERD_TEST_DEVICE: the CPU path in CI, the pinned
// staging path with a background thread on CUDA). Oracle: the checkpoint's own tensors, kept
// aside before the layers are replaced.
#include "core/engine/layer_transfer.h"

#include <vector>

#include "core/engine/model_loader.h"
#include "core/testing/test_data.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

// Loads every layer in order (in the compute dtype fp32), zeroes the first half of the rows of
// each projection on the device, stores it back, and checks the host copies.
void RoundTrip(const std::string& model_path) {
  auto lm = OpenModel(TestDataPath(model_path), "");
  ASSERT_TRUE(lm.ok()) << lm.status();
  LlamaModel& model = lm->model;
  const std::vector<LayerWeights> original = model.layers;  // aliases of the checkpoint
  const at::Device device(TestDevice());
  {
    LayerTransfer transfer(model, device, at::kFloat);
    for (size_t l = 0; l < model.layers.size(); ++l) {
      LayerWeights w = transfer.Load(static_cast<int64_t>(l));
      for (size_t i = 0; i < w.proj.size(); ++i) {
        ASSERT_EQ(w.proj[i].device().type(), device.type());
        ASSERT_EQ(w.proj[i].scalar_type(), at::kFloat);
        ASSERT_TRUE(at::equal(w.proj[i].cpu(), original[l].proj[i].to(at::kFloat)))
            << "layer " << l << " proj " << i;
        w.proj[i].narrow(0, 0, w.proj[i].size(0) / 2).zero_();
      }
      transfer.Store(static_cast<int64_t>(l), w);
    }
    ASSERT_TRUE(transfer.Finish().ok());
  }
  for (size_t l = 0; l < model.layers.size(); ++l) {
    for (size_t i = 0; i < original[l].proj.size(); ++i) {
      const at::Tensor& before = original[l].proj[i];
      const at::Tensor& after = model.layers[l].proj[i];
      ASSERT_EQ(after.device().type(), at::kCPU);
      ASSERT_EQ(after.scalar_type(), before.scalar_type());
      ASSERT_EQ(after.sizes(), before.sizes());
      const int64_t half = before.size(0) / 2;
      EXPECT_EQ(after.narrow(0, 0, half).count_nonzero().item<int64_t>(), 0);
      EXPECT_TRUE(at::equal(after.narrow(0, half, before.size(0) - half),
                            before.narrow(0, half, before.size(0) - half)))
          << "layer " << l << " proj " << i;
    }
    EXPECT_TRUE(at::equal(model.layers[l].input_norm, original[l].input_norm));
  }
}

TEST(LayerTransferTest, RoundTripStories260K) { RoundTrip("models/stories260K/stories260K.bin"); }

// fp16 safetensors, mmapped: the loads read the mapping, the stores go back in fp16.
TEST(LayerTransferTest, RoundTripProse16M) { RoundTrip("models/prose16M"); }

}  // namespace
}  // namespace prunerd
