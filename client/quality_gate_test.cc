#include "client/quality_gate.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

v1::JobResult Result(double dense, double pruned, double sparsity) {
  v1::JobResult r;
  if (dense > 0) r.set_perplexity_dense(dense);
  if (pruned > 0) r.set_perplexity_pruned(pruned);
  r.set_sparsity(sparsity);
  return r;
}

TEST(QualityGateTest, RelativeIncrease) {
  auto g = ParseQualityGates("10%", "", "");
  ASSERT_TRUE(g.ok());
  EXPECT_DOUBLE_EQ(*g->max_increase_relative, 0.10);
  // 20 -> 21.9 is +9.5%: passes; 20 -> 22.1 is +10.5%: fails; exactly +10% passes.
  EXPECT_TRUE(CheckQualityGates(*g, Result(20, 21.9, 0.5)).passed);
  EXPECT_FALSE(CheckQualityGates(*g, Result(20, 22.1, 0.5)).passed);
  EXPECT_TRUE(CheckQualityGates(*g, Result(20, 22.0, 0.5)).passed);
  // A better pruned model always passes.
  EXPECT_TRUE(CheckQualityGates(*g, Result(20, 19, 0.5)).passed);
  GateReport r = CheckQualityGates(*g, Result(20, 25, 0.5));
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_THAT(r.lines[0], ::testing::HasSubstr("25.00%"));
}

TEST(QualityGateTest, AbsoluteIncreaseMaxPplAndSparsity) {
  auto g = ParseQualityGates("+2.5", "30", "0.5");
  ASSERT_TRUE(g.ok());
  EXPECT_DOUBLE_EQ(*g->max_increase_absolute, 2.5);
  EXPECT_TRUE(CheckQualityGates(*g, Result(20, 22.4, 0.5)).passed);
  EXPECT_FALSE(CheckQualityGates(*g, Result(20, 22.6, 0.5)).passed);
  EXPECT_FALSE(CheckQualityGates(*g, Result(28, 30.5, 0.5)).passed);  // above max-ppl
  EXPECT_FALSE(CheckQualityGates(*g, Result(20, 21, 0.499)).passed);  // not sparse enough
  EXPECT_EQ(CheckQualityGates(*g, Result(20, 21, 0.5)).lines.size(), 3u);
}

TEST(QualityGateTest, MissingMeasurementsFailTheGate) {
  auto g = ParseQualityGates("10%", "", "");
  ASSERT_TRUE(g.ok());
  GateReport r = CheckQualityGates(*g, Result(0, 21, 0.5));
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.lines[0], ::testing::HasSubstr("no dense and pruned perplexity"));
  auto m = ParseQualityGates("", "25", "");
  EXPECT_FALSE(CheckQualityGates(*m, Result(20, 0, 0.5)).passed);
  auto none = ParseQualityGates("", "", "");
  EXPECT_FALSE(none->any());
  EXPECT_TRUE(CheckQualityGates(*none, Result(0, 0, 0)).passed);
}

TEST(QualityGateTest, MalformedValuesNameTheFlag) {
  EXPECT_THAT(std::string(ParseQualityGates("ten%", "", "").status().message()),
              ::testing::HasSubstr("--max-ppl-increase"));
  EXPECT_FALSE(ParseQualityGates("-5%", "", "").ok());
  EXPECT_FALSE(ParseQualityGates("", "abc", "").ok());
  EXPECT_FALSE(ParseQualityGates("", "", "1.5").ok());
}

}  // namespace
}  // namespace prunerd
