#include "server/metrics.h"

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/testing/prometheus_text.h"

namespace prunerd {
namespace {

TEST(PrometheusTextParserTest, AcceptsValidAndRejectsMalformedText) {
  auto ok = ParsePrometheusText(
      "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"q\\\"\\n\"} 3\n"
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok->at("a_total").Find({{"x", "q\"\n"}}), 3);
  for (const char* bad : {"x 1\n", "# TYPE a counter\na{b=\"1\" 2\n", "# TYPE a counter\na one\n",
                          "# TYPE a counter\nb 1\n", "# TYPE a gauge\na 1", "# TYPE a bogus\n",
                          "# TYPE a counter\na{b=\"1\",b=\"2\"} 1\n"}) {
    EXPECT_FALSE(ParsePrometheusText(bad).ok()) << bad;
  }
}

TEST(ServerMetricsTest, RendersValidTextFollowingNamingConventions) {
  ServerMetrics m("0.1.0", "abc123");
  m.SetSources({.jobs_by_state =
                    [] {
                      return std::map<v1::JobState, int64_t>{{v1::JOB_STATE_QUEUED, 4},
                                                             {v1::JOB_STATE_SUCCEEDED, 2}};
                    },
                .gpu_memory =
                    [] {
                      return std::vector<std::pair<std::string, int64_t>>{{"cuda:0", 1 << 20}};
                    },
                .watch_streams = [] { return int64_t{3}; }});
  m.JobSubmitted(v1::METHOD_WANDA);
  m.JobSubmitted(v1::METHOD_WANDA);
  m.JobFinished(v1::METHOD_WANDA, JobOutcome::kSucceeded, 42.0);
  m.JobFinished(v1::METHOD_MAGNITUDE, JobOutcome::kFailed, 1.5);
  m.QueueWait(0.2);
  m.QueueWait(7200);
  for (int i = 0; i < 5; ++i) m.LayerPruned(v1::METHOD_WANDA, 0.3);
  m.CalibrationTokens(v1::METHOD_WANDA, 128 * 2048);
  auto parsed = ParsePrometheusText(m.Render());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const auto& f = *parsed;

  for (const auto& [name, fam] : f) {
    EXPECT_EQ(name.rfind("prunerd_", 0), 0u) << name;
    EXPECT_FALSE(fam.help.empty()) << name;
    if (fam.type == "counter") {
      EXPECT_TRUE(absl::EndsWith(name, "_total")) << name;
    }
    for (const PromSample& s : fam.samples) {
      EXPECT_EQ(s.labels.count("job"), 0u) << name;
      EXPECT_EQ(s.labels.count("job_id"), 0u) << name;
    }
  }
  EXPECT_EQ(*f.at("prunerd_build_info").Find({{"version", "0.1.0"}, {"commit", "abc123"}}), 1);
  EXPECT_EQ(*f.at("prunerd_jobs").Find({{"state", "queued"}}), 4);
  EXPECT_EQ(*f.at("prunerd_jobs").Find({{"state", "running"}}), 0);
  EXPECT_EQ(*f.at("prunerd_jobs").Find({{"state", "succeeded"}}), 2);
  EXPECT_EQ(*f.at("prunerd_jobs_submitted_total").Find({{"method", "wanda"}}), 2);
  EXPECT_EQ(*f.at("prunerd_jobs_submitted_total").Find({{"method", "sparsegpt"}}), 0);
  const PromFamily& fin = f.at("prunerd_jobs_finished_total");
  EXPECT_EQ(*fin.Find({{"method", "wanda"}, {"outcome", "succeeded"}}), 1);
  EXPECT_EQ(*fin.Find({{"method", "magnitude"}, {"outcome", "failed"}}), 1);
  EXPECT_EQ(*fin.Find({{"method", "barber"}, {"outcome", "interrupted"}}), 0);
  EXPECT_EQ(f.at("prunerd_queue_wait_seconds").type, "histogram");
  const PromFamily& qw = f.at("prunerd_queue_wait_seconds");
  EXPECT_EQ(*qw.Find({}, "prunerd_queue_wait_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(*qw.Find({}, "prunerd_queue_wait_seconds_sum"), 7200.2);
  EXPECT_EQ(*qw.Find({{"le", "0.5"}}, "prunerd_queue_wait_seconds_bucket"), 1);
  EXPECT_EQ(*qw.Find({{"le", "3600"}}, "prunerd_queue_wait_seconds_bucket"), 1);
  EXPECT_EQ(*qw.Find({{"le", "7200"}}, "prunerd_queue_wait_seconds_bucket"), 2);
  EXPECT_EQ(*qw.Find({{"le", "+Inf"}}, "prunerd_queue_wait_seconds_bucket"), 2);
  const PromFamily& jd = f.at("prunerd_job_duration_seconds");
  EXPECT_EQ(*jd.Find({{"method", "wanda"}}, "prunerd_job_duration_seconds_count"), 1);
  EXPECT_EQ(*jd.Find({{"method", "wanda"}, {"le", "30"}}, "prunerd_job_duration_seconds_bucket"),
            0);
  EXPECT_EQ(*jd.Find({{"method", "wanda"}, {"le", "60"}}, "prunerd_job_duration_seconds_bucket"),
            1);
  EXPECT_EQ(*f.at("prunerd_layer_duration_seconds")
                 .Find({{"method", "wanda"}}, "prunerd_layer_duration_seconds_count"),
            5);
  EXPECT_EQ(*f.at("prunerd_calibration_tokens_total").Find({{"method", "wanda"}}), 262144);
  EXPECT_EQ(*f.at("prunerd_gpu_memory_used_bytes").Find({{"device", "cuda:0"}}), 1 << 20);
  EXPECT_EQ(*f.at("prunerd_watch_streams").Find({}), 3);
}

}  // namespace
}  // namespace prunerd
