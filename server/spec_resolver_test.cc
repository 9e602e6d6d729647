#include "server/spec_resolver.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/api/job_spec.h"
#include "core/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class SpecResolverTest : public ::testing::Test {
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
    s.set_method(v1::METHOD_WANDA);
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

v1::NMPattern NM(int n, int m) {
  v1::NMPattern p;
  p.set_n(n);
  p.set_m(m);
  return p;
}

TEST_F(SpecResolverTest, GoodSpecResolvesPathsAndKeepsTheRest) {
  v1::JobSpec s = Good();
  s.mutable_evaluation()->set_uri("file://" + root_ + "/calib.txt");
  s.mutable_evaluation()->set_max_windows(3);
  auto r = resolver_->Resolve(s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model(), root_ + "/tiny.bin");
  EXPECT_EQ(r->method(), v1::METHOD_WANDA);
  EXPECT_DOUBLE_EQ(r->ratio(), 0.5);
  EXPECT_EQ(r->calibration().uri(), dir_.path() + "/datasets/wiki.raw");
  EXPECT_EQ(r->calibration().num_samples(), 4);
  EXPECT_EQ(r->calibration().seqlen(), 64);
  ASSERT_TRUE(r->has_evaluation());
  EXPECT_EQ(r->evaluation().uri(), root_ + "/calib.txt");
  EXPECT_EQ(r->evaluation().seqlen(), 0);
  EXPECT_EQ(r->evaluation().max_windows(), 3);
  EXPECT_EQ(r->dtype(), v1::DTYPE_AUTO);
  EXPECT_FALSE(r->skip_dense_eval());

  v1::JobSpec nm = Good();
  *nm.mutable_pattern() = NM(2, 4);
  nm.set_method(v1::METHOD_BARBER);
  nm.mutable_barber()->set_init(v1::METHOD_MAGNITUDE);
  nm.mutable_barber()->set_tau(0.2);
  nm.mutable_barber()->set_granularity(v1::BARBER_GRANULARITY_LAYER);
  nm.set_model("hf");
  nm.set_tokenizer("tok.model");
  nm.mutable_calibration()->clear_num_samples();
  nm.set_skip_dense_eval(true);
  auto r2 = resolver_->Resolve(nm);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->pattern().n(), 2);
  EXPECT_EQ(r2->pattern().m(), 4);
  EXPECT_EQ(r2->barber().init(), v1::METHOD_MAGNITUDE);
  EXPECT_DOUBLE_EQ(r2->barber().tau(), 0.2);
  EXPECT_EQ(r2->barber().granularity(), v1::BARBER_GRANULARITY_LAYER);
  EXPECT_EQ(r2->model(), root_ + "/hf");
  EXPECT_EQ(r2->tokenizer(), root_ + "/tok.model");
  EXPECT_TRUE(r2->skip_dense_eval());
  // Defaults are the engine's business (WithDefaults); the resolver keeps the spec as given.
  EXPECT_EQ(r2->calibration().num_samples(), 0);
  EXPECT_EQ(WithDefaults(*r2).calibration().num_samples(), kDefaultCalibrationSamples);
}

TEST_F(SpecResolverTest, EveryBadInputClassNamesItsField) {
  struct Case {
    std::string what;
    std::function<void(v1::JobSpec&)> edit;
    absl::StatusCode code;
    std::string prefix;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<Case> cases = {
      {"unknown method", [](v1::JobSpec& s) { s.set_method(static_cast<v1::Method>(99)); },
       absl::StatusCode::kInvalidArgument, "spec.method: unknown method 99"},
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
      {"N:M N>=M", [](v1::JobSpec& s) { *s.mutable_pattern() = NM(4, 2); },
       absl::StatusCode::kInvalidArgument, "spec.pattern: N:M pattern 4:2 needs 0 < N < M"},
      {"N:M zero", [](v1::JobSpec& s) { *s.mutable_pattern() = NM(0, 4); },
       absl::StatusCode::kInvalidArgument, "spec.pattern:"},
      {"N:M empty", [](v1::JobSpec& s) { s.mutable_pattern(); }, absl::StatusCode::kInvalidArgument,
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
       absl::StatusCode::kInvalidArgument, "spec.calibration.seqlen: must be in [2, "},
      {"bad samples", [](v1::JobSpec& s) { s.mutable_calibration()->set_num_samples(-1); },
       absl::StatusCode::kInvalidArgument, "spec.calibration.num_samples: must be in [1, "},
      {"huge samples", [](v1::JobSpec& s) { s.mutable_calibration()->set_num_samples(1000000); },
       absl::StatusCode::kInvalidArgument, "spec.calibration.num_samples: must be in [1, 65536]"},
      {"overflowing product",
       [](v1::JobSpec& s) {
         s.mutable_calibration()->set_num_samples(65536);
         s.mutable_calibration()->set_seqlen(1 << 20);
       },
       absl::StatusCode::kInvalidArgument, "spec.calibration: num_samples × seqlen"},
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
         s.set_method(v1::METHOD_BARBER);
         s.mutable_barber()->set_tau(1.5);
       },
       absl::StatusCode::kInvalidArgument, "spec.barber.tau: must be in [0, 1]"},
      {"barber granularity",
       [](v1::JobSpec& s) {
         s.set_method(v1::METHOD_BARBER);
         s.mutable_barber()->set_granularity(static_cast<v1::BarberGranularity>(17));
       },
       absl::StatusCode::kInvalidArgument, "spec.barber.granularity: unknown value 17"},
      {"barber init",
       [](v1::JobSpec& s) {
         s.set_method(v1::METHOD_BARBER);
         s.mutable_barber()->set_init(v1::METHOD_BARBER);
       },
       absl::StatusCode::kInvalidArgument,
       "spec.barber.init: must be magnitude, wanda or sparsegpt"},
      {"dtype", [](v1::JobSpec& s) { s.set_dtype(static_cast<v1::DType>(42)); },
       absl::StatusCode::kInvalidArgument, "spec.dtype: unknown dtype 42"},
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

TEST_F(SpecResolverTest, EveryViolationIsReportedAtOnce) {
  v1::JobSpec s = Good();
  s.set_ratio(2.0);
  s.mutable_calibration()->set_seqlen(1);
  s.set_priority(-5000);
  const std::string msg(Check(s).message());
  EXPECT_THAT(msg, HasSubstr("spec.ratio: must be in [0, 1), got 2"));
  EXPECT_THAT(msg, HasSubstr("spec.calibration.seqlen: must be in [2, "));
  EXPECT_THAT(msg, HasSubstr("spec.priority: must be in [-1000, 1000], got -5000"));
  EXPECT_EQ(SpecViolations(s).size(), 3u);
}

TEST_F(SpecResolverTest, NumericMistakesAreReportedBeforeFileLookups) {
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
