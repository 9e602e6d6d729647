#include "core/api/job_spec.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

PruneJobSpec ValidSpec() {
  PruneJobSpec s;
  s.model_path = "/models/m";
  s.method = Method::kWanda;
  s.calibration.path = "/data/valid.txt";
  return s;
}

void ExpectInvalid(const PruneJobSpec& s, const std::string& field_msg) {
  absl::Status st = ValidateJobSpec(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr(field_msg));
}

TEST(JobSpecTest, NamesRoundTrip) {
  for (Method m : {Method::kMagnitude, Method::kWanda, Method::kSparseGpt, Method::kBarber,
                   Method::kTransAct}) {
    auto parsed = ParseMethod(MethodName(m));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_THAT(std::string(ParseMethod("obs").status().message()),
              HasSubstr("method: unknown method \"obs\""));
  EXPECT_EQ(*ParseBarberGranularity("block"), BarberGranularity::kBlock);
  EXPECT_EQ(*ParseBarberMetric("d"), BarberMetric::kD);
  EXPECT_EQ(*ParseGqaMode("query_heads"), GqaMode::kQueryHeads);
  EXPECT_FALSE(ParseGqaMode("heads").ok());
}

TEST(JobSpecTest, ParsesNM) {
  auto p = ParseNM("2:4");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->n, 2);
  EXPECT_EQ(p->m, 4);
  EXPECT_DOUBLE_EQ(p->effective_ratio(), 0.5);
  EXPECT_EQ(PatternName(*p), "2:4");
  EXPECT_EQ(ParseNM("3:8")->n, 3);
  for (const char* bad : {"2-4", "2:", ":4", "4:4", "5:4", "0:4", "a:b", "2:4:8"}) {
    absl::Status s = ParseNM(bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("pattern")) << bad;
  }
}

TEST(JobSpecTest, AcceptsValidSpecs) {
  EXPECT_TRUE(ValidateJobSpec(ValidSpec()).ok());
  PruneJobSpec s = ValidSpec();
  s.pattern.ratio = 0.0;  // ratio 0 is a valid no-op
  EXPECT_TRUE(ValidateJobSpec(s).ok());
  s.method = Method::kBarber;
  s.pattern = *ParseNM("4:8");
  s.barber.init = Method::kSparseGpt;
  s.barber.retain_reconstruction = true;
  s.device = "cuda:1";
  s.evaluation = DataSpec{.path = "/data/test.txt", .seqlen = 512};
  EXPECT_TRUE(ValidateJobSpec(s).ok()) << ValidateJobSpec(s);
}

TEST(JobSpecTest, RejectsBadFieldsByName) {
  PruneJobSpec s = ValidSpec();
  s.model_path = "";
  ExpectInvalid(s, "model: is required");

  for (double r : {1.0, 1.2, -0.1, std::nan("")}) {
    s = ValidSpec();
    s.pattern.ratio = r;
    ExpectInvalid(s, "ratio: must be in [0, 1)");
  }
  s = ValidSpec();
  s.pattern = SparsityPattern{.ratio = 0.5, .n = 4, .m = 4};
  ExpectInvalid(s, "pattern");

  s = ValidSpec();
  s.method = Method::kBarber;
  s.barber.init = Method::kTransAct;
  ExpectInvalid(s, "barber.init");
  s.barber.init = Method::kWanda;
  s.barber.tau = 1.5;
  ExpectInvalid(s, "barber.tau");
  s.barber.tau = 0.1;
  s.barber.retain_reconstruction = true;
  ExpectInvalid(s, "barber.retain_reconstruction");

  s = ValidSpec();
  s.method = Method::kSparseGpt;
  s.sparsegpt.percdamp = 0;
  ExpectInvalid(s, "sparsegpt.percdamp");
  s.sparsegpt.percdamp = 0.01;
  s.pattern = *ParseNM("2:3");
  s.sparsegpt.blocksize = 128;
  ExpectInvalid(s, "sparsegpt.blocksize");

  s = ValidSpec();
  s.method = Method::kTransAct;
  s.transact.attn_ratio = 1.0;
  ExpectInvalid(s, "transact.attn_ratio");
  s.transact.attn_ratio = 0.5;
  s.transact.shots = 0;
  ExpectInvalid(s, "transact.shots");

  s = ValidSpec();
  s.calibration.path = "";
  ExpectInvalid(s, "calibration.path: is required");
  s = ValidSpec();
  s.calibration.num_samples = 0;
  ExpectInvalid(s, "calibration.num_samples");
  s = ValidSpec();
  s.evaluation = DataSpec{.path = "x", .seqlen = -1};
  ExpectInvalid(s, "evaluation.seqlen");
  s = ValidSpec();
  s.device = "gpu0";
  ExpectInvalid(s, "device: unknown device \"gpu0\"");
  s = ValidSpec();
  s.dtype = "int8";
  ExpectInvalid(s, "dtype");
}

}  // namespace
}  // namespace prunerd
