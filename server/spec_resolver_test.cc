#include "server/job_spec_mapping.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/testing/temp_dir.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class JobSpecMappingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.Mkdir("models");
    dir_.Write("models/tiny.bin", "x");
    dir_.Write("models/hf/config.json", "{}");
    dir_.Mkdir("models/not-a-model");
    dir_.Write("models/calib.txt", "some text");
    dir_.Write("models/tok.model", "t");
    dir_.Write("datasets/wiki.raw", "text");
    roots_ = *PathPolicy::Create({root_});
    datasets_ = std::make_unique<DatasetRegistry>(dir_.path() + "/datasets");
    resolver_ = std::make_unique<SpecResolver>(&roots_, datasets_.get());
  }

  v1::JobSpec Good() {
    v1::JobSpec s;
    s.set_model("tiny.bin");
    s.set_method("wanda");
    s.set_ratio(0.5);
    s.mutable_calibration()->set_dataset("wiki");
    s.mutable_calibration()->set_num_samples(4);
    s.mutable_calibration()->set_seqlen(64);
    return s;
  }

  // The code and the message of resolving a spec.
  absl::Status Check(const v1::JobSpec& s) { return resolver_->Resolve(s).status(); }

  TempDir dir_;
  std::string root_;
  PathPolicy roots_;
  std::unique_ptr<DatasetRegistry> datasets_;
  std::unique_ptr<SpecResolver> resolver_;
};

TEST_F(JobSpecMappingTest, GoodSpecResolvesWithDefaults) {
  v1::JobSpec s = Good();
  s.mutable_evaluation()->set_uri("file://" + root_ + "/calib.txt");
  s.mutable_evaluation()->set_max_windows(3);
  auto r = resolver_->Resolve(s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model_path, root_ + "/tiny.bin");
  EXPECT_EQ(r->method, Method::kWanda);
  EXPECT_DOUBLE_EQ(r->pattern.ratio, 0.5);
  EXPECT_FALSE(r->pattern.is_nm());
  EXPECT_EQ(r->calibration.path, dir_.path() + "/datasets/wiki.raw");
  EXPECT_EQ(r->calibration.num_samples, 4);
  EXPECT_EQ(r->calibration.seqlen, 64);
  ASSERT_TRUE(r->evaluation.has_value());
  EXPECT_EQ(r->evaluation->path, root_ + "/calib.txt");
  EXPECT_EQ(r->evaluation->seqlen, kDefaultSeqlen);
  EXPECT_EQ(r->evaluation->max_windows, 3);
  EXPECT_EQ(r->dtype, "auto");
  EXPECT_TRUE(r->eval_dense);
  EXPECT_TRUE(r->output_dir.empty());

  v1::JobSpec nm = Good();
  nm.set_pattern("2:4");
  nm.set_method("barber");
  nm.mutable_barber()->set_init("magnitude");
  nm.mutable_barber()->set_tau(0.2);
  nm.mutable_barber()->set_granularity("layer");
  nm.set_model("hf");
  nm.set_tokenizer("tok.model");
  nm.mutable_calibration()->clear_num_samples();
  nm.set_skip_dense_eval(true);
  auto r2 = resolver_->Resolve(nm);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->pattern.n, 2);
  EXPECT_EQ(r2->pattern.m, 4);
  EXPECT_EQ(r2->method, Method::kBarber);
  EXPECT_EQ(r2->barber.init, Method::kMagnitude);
  EXPECT_DOUBLE_EQ(r2->barber.tau, 0.2);
  EXPECT_EQ(r2->barber.granularity, BarberGranularity::kLayer);
  EXPECT_EQ(r2->model_path, root_ + "/hf");
  EXPECT_EQ(r2->tokenizer_path, root_ + "/tok.model");
  EXPECT_EQ(r2->calibration.num_samples, kDefaultCalibrationSamples);
  EXPECT_FALSE(r2->eval_dense);
}

TEST_F(JobSpecMappingTest, EveryBadInputClassNamesItsField) {
  struct Case {
    std::string what;
    std::function<void(v1::JobSpec&)> edit;
    absl::StatusCode code;
    std::string prefix;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<Case> cases = {
      {"unknown method", [](v1::JobSpec& s) { s.set_method("prune-harder"); },
       absl::StatusCode::kInvalidArgument, "spec.method: unknown method \"prune-harder\""},
      {"no method", [](v1::JobSpec& s) { s.clear_method(); }, absl::StatusCode::kInvalidArgument,
       "spec.method: is required"},
      {"ratio 1", [](v1::JobSpec& s) { s.set_ratio(1.0); }, absl::StatusCode::kInvalidArgument,
       "spec.ratio: must be in [0, 1)"},
      {"ratio -0.1", [](v1::JobSpec& s) { s.set_ratio(-0.1); }, absl::StatusCode::kInvalidArgument,
       "spec.ratio: must be in [0, 1)"},
      {"ratio NaN", [nan](v1::JobSpec& s) { s.set_ratio(nan); }, absl::StatusCode::kInvalidArgument,
       "spec.ratio: must be in [0, 1)"},
      {"no target", [](v1::JobSpec& s) { s.clear_sparsity(); }, absl::StatusCode::kInvalidArgument,
       "spec.ratio: a sparsity ratio or an N:M pattern"},
      {"N:M dash", [](v1::JobSpec& s) { s.set_pattern("2-4"); }, absl::StatusCode::kInvalidArgument,
       "spec.pattern: malformed N:M pattern"},
      {"N:M letters", [](v1::JobSpec& s) { s.set_pattern("a:b"); },
       absl::StatusCode::kInvalidArgument, "spec.pattern: malformed N:M pattern"},
      {"N:M N>=M", [](v1::JobSpec& s) { s.set_pattern("4:2"); }, absl::StatusCode::kInvalidArgument,
       "spec.pattern: N:M pattern \"4:2\" needs 0 < N < M"},
      {"N:M zero", [](v1::JobSpec& s) { s.set_pattern("0:4"); }, absl::StatusCode::kInvalidArgument,
       "spec.pattern:"},
      {"outside roots", [](v1::JobSpec& s) { s.set_model("/etc/passwd"); },
       absl::StatusCode::kInvalidArgument, "spec.model: path is outside"},
      {"dotdot", [](v1::JobSpec& s) { s.set_model("../datasets/wiki.raw"); },
       absl::StatusCode::kInvalidArgument, "spec.model: \"..\" is not allowed"},
      {"missing model", [](v1::JobSpec& s) { s.set_model("missing.bin"); },
       absl::StatusCode::kNotFound, "spec.model: no such file inside the model roots"},
      {"no model", [](v1::JobSpec& s) { s.clear_model(); }, absl::StatusCode::kInvalidArgument,
       "spec.model: is required"},
      {"dir without config", [](v1::JobSpec& s) { s.set_model("not-a-model"); },
       absl::StatusCode::kInvalidArgument, "spec.model: directory without config.json"},
      {"unknown dataset", [](v1::JobSpec& s) { s.mutable_calibration()->set_dataset("c5"); },
       absl::StatusCode::kNotFound, "spec.calibration.dataset: unknown dataset \"c5\""},
      {"data outside roots",
       [](v1::JobSpec& s) { s.mutable_calibration()->set_uri("/etc/hostname"); },
       absl::StatusCode::kInvalidArgument, "spec.calibration.uri: path is outside"},
      {"no calibration", [](v1::JobSpec& s) { s.clear_calibration(); },
       absl::StatusCode::kInvalidArgument, "spec.calibration: a dataset name or a file uri"},
      {"bad seqlen", [](v1::JobSpec& s) { s.mutable_calibration()->set_seqlen(-5); },
       absl::StatusCode::kInvalidArgument, "spec.calibration.seqlen: must be >= 2"},
      {"bad samples", [](v1::JobSpec& s) { s.mutable_calibration()->set_num_samples(-1); },
       absl::StatusCode::kInvalidArgument, "spec.calibration.num_samples: must be > 0"},
      {"eval windows",
       [](v1::JobSpec& s) {
         s.mutable_evaluation()->set_dataset("wiki");
         s.mutable_evaluation()->set_max_windows(-2);
       },
       absl::StatusCode::kInvalidArgument, "spec.evaluation.max_windows: must be >= 0"},
      {"priority", [](v1::JobSpec& s) { s.set_priority(5000); }, absl::StatusCode::kInvalidArgument,
       "spec.priority: must be in [-1000, 1000]"},
      {"label key", [](v1::JobSpec& s) { (*s.mutable_labels())["Bad Key"] = "v"; },
       absl::StatusCode::kInvalidArgument, "spec.labels: bad key \"Bad Key\""},
      {"barber tau",
       [](v1::JobSpec& s) {
         s.set_method("barber");
         s.mutable_barber()->set_tau(1.5);
       },
       absl::StatusCode::kInvalidArgument, "spec.barber.tau: must be in [0, 1]"},
      {"barber granularity",
       [](v1::JobSpec& s) {
         s.set_method("barber");
         s.mutable_barber()->set_granularity("row");
       },
       absl::StatusCode::kInvalidArgument, "spec.barber.granularity: unknown granularity"},
      {"barber init",
       [](v1::JobSpec& s) {
         s.set_method("barber");
         s.mutable_barber()->set_init("barber");
       },
       absl::StatusCode::kInvalidArgument,
       "spec.barber.init: must be magnitude, wanda or sparsegpt"},
      {"dtype", [](v1::JobSpec& s) { s.set_dtype("int4"); }, absl::StatusCode::kInvalidArgument,
       "spec.dtype: unknown dtype \"int4\""},
      {"tokenizer outside", [](v1::JobSpec& s) { s.set_tokenizer("/etc/passwd"); },
       absl::StatusCode::kInvalidArgument, "spec.tokenizer: path is outside"},
  };
  for (const Case& c : cases) {
    v1::JobSpec s = Good();
    c.edit(s);
    absl::Status st = Check(s);
    EXPECT_EQ(st.code(), c.code) << c.what << ": " << st;
    EXPECT_THAT(std::string(st.message()), StartsWith(c.prefix)) << c.what;
  }
}

TEST_F(JobSpecMappingTest, NumericMistakesAreReportedBeforeFileLookups) {
  v1::JobSpec s = Good();
  s.set_model("missing.bin");
  s.set_ratio(2.0);
  EXPECT_EQ(Check(s).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(Check(s).message()), HasSubstr("spec.ratio"));
}

TEST(SpecHashTest, IndependentOfMapOrderButSensitiveToContent) {
  v1::JobSpec a, b;
  a.set_model("m");
  b.set_model("m");
  for (int i = 0; i < 20; ++i) (*a.mutable_labels())[absl::StrCat("k", i)] = "v";
  for (int i = 19; i >= 0; --i) (*b.mutable_labels())[absl::StrCat("k", i)] = "v";
  EXPECT_EQ(SpecHash(a), SpecHash(b));
  EXPECT_EQ(SpecHash(a).size(), 64u);
  b.set_ratio(0.5);
  EXPECT_NE(SpecHash(a), SpecHash(b));
}

}  // namespace
}  // namespace prunerd
