#include "client/job_format.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

TEST(JobFormatTest, Durations) {
  EXPECT_EQ(HumanDuration(9.4), "9s");
  EXPECT_EQ(HumanDuration(75), "1m15s");
  EXPECT_EQ(HumanDuration(3725), "1h02m");
  EXPECT_EQ(HumanDuration(-1), "?");
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(int64_t{3} << 30), "3.0 GiB");
}

TEST(JobFormatTest, ProgressBar) {
  v1::JobProgress p;
  p.set_stage(v1::STAGE_PRUNE);
  p.set_layer(2);
  p.set_layers(5);
  p.set_fraction(0.6);
  p.set_eta_seconds(65);
  p.set_perplexity_dense(21.3);
  // 60% of 10 cells = 6 filled.
  EXPECT_EQ(ProgressBarLine(v1::JOB_STATE_RUNNING, p, 10),
            "[######----]  60.0%  running   prune 3/5  ETA 1m05s  ppl(dense) 21.30");
  p.set_fraction(1.7);  // clamped
  EXPECT_THAT(ProgressBarLine(v1::JOB_STATE_RUNNING, p, 4), HasSubstr("[####] 100.0%"));
}

TEST(JobFormatTest, EventLineAndJson) {
  v1::JobEvent ev;
  ev.set_seq(7);
  ev.set_state(v1::JOB_STATE_RUNNING);
  ev.set_type(v1::JobEvent::TYPE_PROGRESS);
  ev.mutable_time()->set_seconds(1700000000);
  ev.mutable_progress()->set_stage(v1::STAGE_PRUNE);
  ev.mutable_progress()->set_layer(0);
  ev.mutable_progress()->set_layers(2);
  ev.mutable_progress()->set_fraction(0.5);
  ev.set_message("layer 1/2");
  EXPECT_EQ(EventLine(ev), "2023-11-14T22:13:20Z  #7  running  prune 1/2  50.0%  layer 1/2");
  const std::string json = ToJson(ev);
  // Proto field names, in proto order, int64 as numbers (the canonical mapping quotes them).
  EXPECT_EQ(json,
            "{\"seq\":7,\"time\":\"2023-11-14T22:13:20Z\",\"type\":\"TYPE_PROGRESS\","
            "\"state\":\"JOB_STATE_RUNNING\",\"progress\":{\"layers\":2,\"fraction\":0.5,"
            "\"stage\":\"STAGE_PRUNE\"},\"message\":\"layer 1/2\"}");
}

TEST(JobFormatTest, SummaryOfAFinishedJob) {
  v1::Job j;
  j.set_id("j-1");
  j.set_state(v1::JOB_STATE_SUCCEEDED);
  j.mutable_spec()->set_method(v1::METHOD_WANDA);
  j.mutable_spec()->mutable_pattern()->set_n(2);
  j.mutable_spec()->mutable_pattern()->set_m(4);
  j.mutable_result()->set_perplexity_dense(20);
  j.mutable_result()->set_perplexity_pruned(22);
  j.mutable_result()->set_sparsity(0.5);
  auto* a = j.mutable_result()->add_artifacts();
  a->set_name("report.json");
  a->set_size_bytes(2048);
  a->set_sha256("0123456789abcdef0123");
  const std::string s = JobSummary(j);
  EXPECT_THAT(s, HasSubstr("state      succeeded"));
  EXPECT_THAT(s, HasSubstr("target 2:4"));
  EXPECT_THAT(s, HasSubstr("dense 20.0000  pruned 22.0000  (+10.00%)"));
  EXPECT_THAT(s, HasSubstr("report.json"));
  EXPECT_THAT(s, HasSubstr("2.0 KiB"));
  EXPECT_EQ(StateName(v1::JOB_STATE_CANCELLED), "cancelled");
}

}  // namespace
}  // namespace prunerd
