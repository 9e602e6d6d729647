// Perplexity through the public API: the WikiText-2 protocol, errors on bad input, cancel.
// Numeric agreement with the reference implementation is checked against golden files in
// reference_parity_test.cc.
#include <fstream>

#include "core/api/engine.h"
#include "core/testing/test_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

EvalSpec StoriesSpec() {
  return EvalSpec{.model_path = TestDataPath("models/stories260K/stories260K.bin"),
                  .data_path = TestDataPath("text/tinystories/tinystories_val_head.txt"),
                  .seqlen = 256,
                  .max_windows = 8};
}

TEST(EvaluatePerplexityTest, ReportsWindowsAndProgress) {
  int calls = 0;
  double last_fraction = -1;
  auto r = EvaluatePerplexity(StoriesSpec(), [&](const v1::EngineProgress& p) {
    ++calls;
    EXPECT_GE(p.fraction(), last_fraction);
    last_fraction = p.fraction();
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->windows, 8);
  EXPECT_EQ(r->window_nll.size(), 8u);
  double mean = 0;
  for (double v : r->window_nll) mean += v / 8;
  EXPECT_NEAR(r->mean_nll, mean, 1e-12);
  EXPECT_NEAR(r->perplexity, std::exp(mean), 1e-9);
  // In-domain text for a model with validation loss ~1.3 (README): far below uniform (512).
  EXPECT_LT(r->perplexity, 10.0);
  EXPECT_GT(calls, 5);  // load + every layer + done
  EXPECT_DOUBLE_EQ(last_fraction, 1.0);
}

TEST(EvaluatePerplexityTest, CancelStopsWithCancelled) {
  int calls = 0;
  auto r =
      EvaluatePerplexity(StoriesSpec(), [&](const v1::EngineProgress&) { return ++calls < 3; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ(calls, 3);
}

TEST(EvaluatePerplexityTest, BadInputIsAClearError) {
  const std::string dir = ::testing::TempDir();
  const std::string empty = dir + "/empty.txt";
  std::ofstream(empty).close();
  EvalSpec s = StoriesSpec();
  s.data_path = empty;
  auto r = EvaluatePerplexity(s, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("empty.txt"));

  s = StoriesSpec();
  s.model_path = dir + "/no-such-model";
  r = EvaluatePerplexity(s, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();

  s = StoriesSpec();
  s.device = "cuda:7";
  r = EvaluatePerplexity(s, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();

  s = StoriesSpec();
  s.seqlen = 1;
  EXPECT_EQ(EvaluatePerplexity(s, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace prunerd
