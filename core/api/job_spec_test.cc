#include <cmath>
#include <limits>

#include "core/api/job_spec.h"
#include "core/api/job_state.h"
#include "core/api/proto_json.h"
#include "core/api/report.h"
#include "core/api/spec_flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prunerd/v1/job.pb.h"

namespace prunerd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::JobSpec ValidSpec() {
  v1::JobSpec s;
  s.set_model("/models/m");
  s.set_method(v1::METHOD_WANDA);
  s.set_ratio(0.5);
  s.mutable_calibration()->set_uri("/data/valid.txt");
  return s;
}

void ExpectInvalid(const v1::JobSpec& s, const std::string& field_msg) {
  absl::Status st = ValidateJobSpec(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr(field_msg));
}

TEST(JobSpecTest, EnumShortNamesRoundTrip) {
  EXPECT_EQ(EnumName(v1::METHOD_SPARSEGPT), "sparsegpt");
  EXPECT_EQ(EnumName(v1::DTYPE_BFLOAT16), "bfloat16");
  EXPECT_EQ(EnumName(v1::BARBER_GRANULARITY_OUTPUT1), "output1");
  EXPECT_EQ(EnumName(v1::BARBER_METRIC_WD), "wd");
  EXPECT_EQ(EnumName(v1::GQA_MODE_QUERY_HEADS), "query_heads");
  EXPECT_EQ(EnumName(v1::GRAD_PRECISION_TF32), "tf32");
  EXPECT_EQ(EnumName(v1::STAGE_EVAL_PRUNED), "eval_pruned");
  EXPECT_EQ(EnumName(v1::JOB_STATE_CANCELLED), "cancelled");
  EXPECT_EQ(EnumName(static_cast<v1::Method>(42)), "unknown(42)");
  for (v1::Method m : EnumValues<v1::Method>()) {
    absl::StatusOr<v1::Method> back = ParseEnum<v1::Method>(EnumName(m), "method");
    ASSERT_TRUE(back.ok()) << EnumName(m);
    EXPECT_EQ(*back, m);
  }
  EXPECT_EQ(EnumValues<v1::Method>().size(), 5u);  // UNSPECIFIED is not a choice
  EXPECT_EQ(*ParseEnum<v1::Method>("METHOD_BARBER", "method"), v1::METHOD_BARBER);
  EXPECT_EQ(*ParseEnum<v1::Method>("Wanda", "method"), v1::METHOD_WANDA);
  absl::Status bad = ParseEnum<v1::Method>("obs", "--method").status();
  EXPECT_EQ(bad.message(),
            "--method: unknown value \"obs\" (expected magnitude, wanda, sparsegpt, barber, "
            "transact)");
  EXPECT_FALSE(ParseEnum<v1::Method>("unspecified", "method").ok());
}

TEST(JobSpecTest, ParsesNMPatterns) {
  absl::StatusOr<v1::NMPattern> p = ParseNMPattern("2:4", "pattern");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->n(), 2);
  EXPECT_EQ(p->m(), 4);
  v1::JobSpec s;
  *s.mutable_pattern() = *p;
  EXPECT_DOUBLE_EQ(PatternOf(s).effective_ratio(), 0.5);
  EXPECT_EQ(PatternName(PatternOf(s)), "2:4");
  EXPECT_EQ(ParseNMPattern("3:8", "p")->n(), 3);
  for (const char* bad : {"2-4", "2:", ":4", "4:4", "5:4", "0:4", "a:b", "2:4:8"}) {
    absl::Status st = ParseNMPattern(bad, "--pattern").status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(st.message()), HasSubstr("--pattern")) << bad;
  }
}

TEST(JobSpecTest, WithDefaultsWritesEveryDefaultAndClearsUnusedOptions) {
  v1::JobSpec s = ValidSpec();
  s.set_method(v1::METHOD_BARBER);
  s.mutable_transact()->set_shots(3);  // not a transact job: cleared
  v1::JobSpec d = WithDefaults(s);
  EXPECT_EQ(d.barber().init(), v1::METHOD_WANDA);
  EXPECT_DOUBLE_EQ(d.barber().tau(), 0.01);
  EXPECT_FALSE(d.has_sparsegpt());
  EXPECT_FALSE(d.has_transact());
  EXPECT_EQ(d.calibration().num_samples(), 128);
  EXPECT_EQ(WithDefaults(d).SerializeAsString(), d.SerializeAsString());  // idempotent

  s.mutable_barber()->set_init(v1::METHOD_SPARSEGPT);
  d = WithDefaults(s);
  EXPECT_DOUBLE_EQ(d.sparsegpt().percdamp(), 0.01);
  EXPECT_EQ(d.sparsegpt().blocksize(), 128);

  v1::JobSpec t = ValidSpec();
  t.set_method(v1::METHOD_TRANSACT);
  t.mutable_transact()->set_attn_ratio(0.25);
  d = WithDefaults(t);
  EXPECT_DOUBLE_EQ(d.transact().attn_ratio(), 0.25);
  EXPECT_DOUBLE_EQ(d.transact().mlp_ratio(), 0.5);
  EXPECT_EQ(d.transact().shots(), 1);
  EXPECT_TRUE(UsesCalibration(v1::METHOD_WANDA));
  EXPECT_FALSE(UsesCalibration(v1::METHOD_MAGNITUDE));
}

TEST(JobSpecTest, AcceptsValidSpecs) {
  EXPECT_TRUE(ValidateJobSpec(ValidSpec()).ok());
  v1::JobSpec s = ValidSpec();
  s.set_ratio(0.0);  // ratio 0 is a valid no-op
  EXPECT_TRUE(ValidateJobSpec(s).ok());
  s.set_method(v1::METHOD_BARBER);
  *s.mutable_pattern() = *ParseNMPattern("4:8", "p");
  s.mutable_barber()->set_init(v1::METHOD_SPARSEGPT);
  s.mutable_barber()->set_retain_reconstruction(true);
  s.mutable_evaluation()->set_uri("/data/test.txt");
  s.mutable_evaluation()->set_seqlen(512);
  EXPECT_TRUE(ValidateJobSpec(s).ok()) << ValidateJobSpec(s);
  v1::JobSpec t = ValidSpec();
  t.set_method(v1::METHOD_TRANSACT);
  t.clear_sparsity();  // transact's targets are its own
  EXPECT_TRUE(ValidateJobSpec(t).ok()) << ValidateJobSpec(t);
}

TEST(JobSpecTest, RejectsBadFieldsByName) {
  v1::JobSpec s = ValidSpec();
  s.clear_model();
  ExpectInvalid(s, "model: is required");
  s = ValidSpec();
  s.clear_method();
  ExpectInvalid(s, "method: is required (magnitude, wanda, sparsegpt, barber, transact)");

  for (double r : {1.0, 1.2, -0.1, std::nan("")}) {
    s = ValidSpec();
    s.set_ratio(r);
    ExpectInvalid(s, "ratio: must be in [0, 1)");
  }
  s = ValidSpec();
  s.mutable_pattern()->set_n(4);
  s.mutable_pattern()->set_m(4);
  ExpectInvalid(s, "pattern: N:M pattern 4:4 needs 0 < N < M");

  s = ValidSpec();
  s.set_method(v1::METHOD_BARBER);
  s.mutable_barber()->set_init(v1::METHOD_TRANSACT);
  ExpectInvalid(s, "barber.init: must be magnitude, wanda or sparsegpt, got transact");
  s.mutable_barber()->set_init(v1::METHOD_WANDA);
  s.mutable_barber()->set_tau(1.5);
  ExpectInvalid(s, "barber.tau: must be in [0, 1], got 1.5");
  s.mutable_barber()->set_tau(0.1);
  s.mutable_barber()->set_retain_reconstruction(true);
  ExpectInvalid(s, "barber.retain_reconstruction: only applies to init sparsegpt");

  s = ValidSpec();
  s.set_method(v1::METHOD_SPARSEGPT);
  s.mutable_sparsegpt()->set_percdamp(0);
  ExpectInvalid(s, "sparsegpt.percdamp: must be in (0, 1), got 0");
  s.mutable_sparsegpt()->set_percdamp(0.01);
  *s.mutable_pattern() = *ParseNMPattern("2:3", "p");
  s.mutable_sparsegpt()->set_blocksize(128);
  ExpectInvalid(s, "sparsegpt.blocksize: must be a multiple of M=3 for N:M, got 128");

  s = ValidSpec();
  s.set_method(v1::METHOD_TRANSACT);
  s.mutable_transact()->set_attn_ratio(1.0);
  ExpectInvalid(s, "transact.attn_ratio: must be in [0, 1), got 1");
  s.mutable_transact()->set_attn_ratio(0.5);
  s.mutable_transact()->set_shots(65);
  ExpectInvalid(s, "transact.shots: must be in [1, 64], got 65");

  s = ValidSpec();
  s.clear_calibration();
  ExpectInvalid(s, "calibration: a dataset name or a file uri is required");
  s = ValidSpec();
  s.mutable_calibration()->set_num_samples(-3);
  ExpectInvalid(s, "calibration.num_samples: must be in [1, 65536] (0 = 128), got -3");
  s = ValidSpec();
  s.mutable_evaluation()->set_uri("x");
  s.mutable_evaluation()->set_seqlen(-1);
  ExpectInvalid(s, "evaluation.seqlen");
  s = ValidSpec();
  s.set_dtype(static_cast<v1::DType>(9));
  ExpectInvalid(s, "dtype: unknown dtype 9");
  s = ValidSpec();
  s.set_batch_size(-1);
  ExpectInvalid(s, "batch_size: must be >= 0");
}

// The overflow that a 2^62-sample spec once caused is caught before anything multiplies.
TEST(JobSpecTest, SizesAreBoundedWithoutOverflow) {
  v1::JobSpec s = ValidSpec();
  s.mutable_calibration()->set_num_samples(int64_t{1} << 62);
  s.mutable_calibration()->set_seqlen(4);
  ExpectInvalid(s, "calibration.num_samples: must be in [1, 65536]");
  s.mutable_calibration()->set_num_samples(60000);
  s.mutable_calibration()->set_seqlen(60000);  // 3.6e9 tokens
  ExpectInvalid(s, "calibration: num_samples × seqlen = 3600000000 tokens exceeds the limit");
  s.mutable_calibration()->set_seqlen(int64_t{1} << 40);
  ExpectInvalid(s, "calibration.seqlen: must be in [2, 1048576]");
}

TEST(JobSpecTest, ReportsEveryViolationAtOnceInFieldOrder) {
  v1::JobSpec s = ValidSpec();
  s.clear_model();
  s.set_ratio(7);
  s.mutable_calibration()->set_seqlen(1);
  s.set_priority(2000);
  (*s.mutable_labels())["Bad"] = "x";
  std::vector<FieldViolation> v = SpecViolations(s);
  std::vector<std::string> fields;
  for (const FieldViolation& f : v) fields.push_back(f.field);
  EXPECT_THAT(fields, ElementsAre("model", "ratio", "calibration.seqlen", "priority", "labels"));
  const absl::Status st = ViolationsToStatus(v, "spec.");
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("spec.model: is required; spec.ratio: must be in [0, 1), got 7; "));
}

TEST(JobStateTest, TerminalStates) {
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_SUCCEEDED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_FAILED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_CANCELLED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_QUEUED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_RUNNING));
}

// ---- Flags --------------------------------------------------------------------------------

absl::StatusOr<v1::JobSpec> FromFlags(const std::vector<std::string>& args, v1::JobSpec base = {}) {
  ArgParser p("test", "");
  SpecFlags flags(p);
  if (absl::Status s = p.Parse(args); !s.ok()) return s;
  if (absl::Status s = flags.ApplyTo(&base); !s.ok()) return s;
  return base;
}

TEST(SpecFlagsTest, EveryFlagLandsInItsField) {
  absl::StatusOr<v1::JobSpec> s = FromFlags({"--model",
                                             "m",
                                             "--tokenizer",
                                             "t",
                                             "--method",
                                             "barber",
                                             "--pattern",
                                             "2:4",
                                             "--calib-dataset",
                                             "wiki",
                                             "--calib-samples",
                                             "32",
                                             "--calib-seqlen",
                                             "256",
                                             "--calib-seed",
                                             "7",
                                             "--eval-file",
                                             "e.txt",
                                             "--eval-seqlen",
                                             "512",
                                             "--eval-max-windows",
                                             "9",
                                             "--skip-dense-eval",
                                             "--skip-calib-eval",
                                             "--skip-model-output",
                                             "--dtype",
                                             "bfloat16",
                                             "--batch-size",
                                             "4",
                                             "--priority",
                                             "-3",
                                             "--label",
                                             "team=a",
                                             "--label",
                                             "run=b",
                                             "--barber-init",
                                             "sparsegpt",
                                             "--barber-tau",
                                             "0.2",
                                             "--barber-granularity",
                                             "block",
                                             "--barber-metric",
                                             "d",
                                             "--barber-retain-reconstruction",
                                             "--barber-grad-precision",
                                             "tf32",
                                             "--barber-skip-block-mse",
                                             "--percdamp",
                                             "0.05",
                                             "--blocksize",
                                             "64",
                                             "--attn-ratio",
                                             "0.25",
                                             "--mlp-ratio",
                                             "0.75",
                                             "--attn-dim",
                                             "128",
                                             "--mlp-dim",
                                             "512",
                                             "--shots",
                                             "2",
                                             "--gqa-mode",
                                             "query_heads"});
  ASSERT_TRUE(s.ok()) << s.status();
  // Every field set, compared with the expected message written by hand.
  v1::JobSpec want;
  want.set_model("m");
  want.set_tokenizer("t");
  want.set_method(v1::METHOD_BARBER);
  want.mutable_pattern()->set_n(2);
  want.mutable_pattern()->set_m(4);
  want.mutable_calibration()->set_dataset("wiki");
  want.mutable_calibration()->set_num_samples(32);
  want.mutable_calibration()->set_seqlen(256);
  want.mutable_calibration()->set_seed(7);
  want.mutable_evaluation()->set_uri("e.txt");
  want.mutable_evaluation()->set_seqlen(512);
  want.mutable_evaluation()->set_max_windows(9);
  want.set_skip_dense_eval(true);
  want.set_skip_calibration_eval(true);
  want.set_skip_model_output(true);
  want.set_dtype(v1::DTYPE_BFLOAT16);
  want.set_batch_size(4);
  want.set_priority(-3);
  (*want.mutable_labels())["team"] = "a";
  (*want.mutable_labels())["run"] = "b";
  v1::BarberOptions* b = want.mutable_barber();
  b->set_init(v1::METHOD_SPARSEGPT);
  b->set_tau(0.2);
  b->set_granularity(v1::BARBER_GRANULARITY_BLOCK);
  b->set_metric(v1::BARBER_METRIC_D);
  b->set_retain_reconstruction(true);
  b->set_grad_precision(v1::GRAD_PRECISION_TF32);
  b->set_skip_block_mse(true);
  want.mutable_sparsegpt()->set_percdamp(0.05);
  want.mutable_sparsegpt()->set_blocksize(64);
  v1::TransActOptions* t = want.mutable_transact();
  t->set_attn_ratio(0.25);
  t->set_mlp_ratio(0.75);
  t->set_attn_dim(128);
  t->set_mlp_dim(512);
  t->set_shots(2);
  t->set_gqa_mode(v1::GQA_MODE_QUERY_HEADS);
  EXPECT_EQ(ProtoToJson(*s), ProtoToJson(want));
}

TEST(SpecFlagsTest, FlagsOverrideOnlyWhatTheyName) {
  v1::JobSpec base = ValidSpec();
  base.mutable_calibration()->set_num_samples(64);
  absl::StatusOr<v1::JobSpec> s =
      FromFlags({"--calib-seqlen", "128", "--method", "magnitude"}, base);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->model(), "/models/m");
  EXPECT_EQ(s->method(), v1::METHOD_MAGNITUDE);
  EXPECT_EQ(s->calibration().uri(), "/data/valid.txt");
  EXPECT_EQ(s->calibration().num_samples(), 64);
  EXPECT_EQ(s->calibration().seqlen(), 128);
  // No target anywhere: the flag's default ratio; transact takes none.
  EXPECT_DOUBLE_EQ(FromFlags({"--method", "wanda"})->ratio(), 0.5);
  EXPECT_EQ(FromFlags({"--method", "transact"})->sparsity_case(), v1::JobSpec::SPARSITY_NOT_SET);
}

TEST(SpecFlagsTest, BadValuesNameTheFlag) {
  EXPECT_EQ(FromFlags({"--method", "wandaa"}).status().message(),
            "--method: unknown value \"wandaa\" (expected magnitude, wanda, sparsegpt, barber, "
            "transact)");
  EXPECT_THAT(FromFlags({"--pattern", "2/4"}).status().message(), HasSubstr("--pattern"));
  EXPECT_THAT(FromFlags({"--ratio", "0.3", "--pattern", "2:4"}).status().message(),
              HasSubstr("--ratio and --pattern are exclusive"));
  EXPECT_THAT(FromFlags({"--calib-dataset", "a", "--calib-file", "b"}).status().message(),
              HasSubstr("exclusive"));
  EXPECT_THAT(FromFlags({"--label", "novalue"}).status().message(),
              HasSubstr("--label: expected key=value"));
  EXPECT_THAT(FromFlags({"--dtype", "int4"}).status().message(), HasSubstr("--dtype"));
  EXPECT_THAT(FromFlags({"--gqa-mode", "heads"}).status().message(), HasSubstr("--gqa-mode"));
}

TEST(SpecFlagsTest, FlagNamesAreStable) {
  const std::vector<std::string> names = SpecFlags::FlagNames();
  EXPECT_EQ(names.size(), 36u);
  EXPECT_EQ(names.front(), "model");
  EXPECT_THAT(names, ::testing::Contains("barber-init"));
  EXPECT_THAT(names, ::testing::Contains("calib-samples"));
  EXPECT_THAT(names, ::testing::Not(::testing::Contains("nsamples")));
}

// ---- JSON ---------------------------------------------------------------------------------

TEST(ProtoJsonTest, ProtoNamesNumbersAndRoundTrip) {
  v1::PruneReport r;
  r.mutable_model()->set_parameters(int64_t{6738415616});
  r.mutable_memory()->set_peak_device_bytes(int64_t{1} << 60);  // past 2^53: stays a string
  r.mutable_calibration()->set_seed(uint64_t{18446744073709551615u});
  r.set_compute_dtype(v1::DTYPE_FLOAT16);
  v1::Evaluation* e = r.add_evaluations();
  e->set_target(v1::EVAL_TARGET_PRUNED);
  e->set_perplexity(12.5);
  (*r.mutable_timing()->mutable_stage_seconds())["prune"] = 1.5;
  const std::string j = ProtoToJson(r);
  EXPECT_THAT(j, HasSubstr("\"compute_dtype\":\"DTYPE_FLOAT16\""));
  EXPECT_THAT(j, HasSubstr("\"parameters\":6738415616"));
  EXPECT_THAT(j, HasSubstr("\"peak_device_bytes\":\"1152921504606846976\""));
  EXPECT_THAT(j, HasSubstr("\"seed\":\"18446744073709551615\""));
  EXPECT_THAT(j, HasSubstr("\"stage_seconds\":{\"prune\":1.5}"));
  absl::StatusOr<v1::PruneReport> back = JsonToProto<v1::PruneReport>(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), r.SerializeAsString());
  EXPECT_THAT(std::string(JsonToProto<v1::PruneReport>("{\"nope\": 1}").status().message()),
              HasSubstr("prunerd.v1.PruneReport"));
}

TEST(ReportTest, SummaryTakesTheEvaluationSetPerplexities) {
  v1::PruneReport r;
  r.set_sparsity(0.5);
  auto add = [&](v1::EvalTarget t, double ppl) {
    v1::Evaluation* e = r.add_evaluations();
    e->set_target(t);
    e->set_perplexity(ppl);
  };
  add(v1::EVAL_TARGET_CALIBRATION_DENSE, 3);
  add(v1::EVAL_TARGET_DENSE, 10);
  add(v1::EVAL_TARGET_PRUNED, 12);
  add(v1::EVAL_TARGET_CALIBRATION_PRUNED, 4);
  ReportSummary s = SummarizeReport(r);
  EXPECT_DOUBLE_EQ(s.sparsity, 0.5);
  EXPECT_DOUBLE_EQ(*s.perplexity_dense, 10);
  EXPECT_DOUBLE_EQ(*s.perplexity_pruned, 12);
  EXPECT_FALSE(SummarizeReport(v1::PruneReport()).perplexity_dense.has_value());
}

}  // namespace
}  // namespace prunerd
