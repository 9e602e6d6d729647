// End-to-end tests: the real prunerd binary (real engine, CPU) on a free loopback port,
// driven by the real prunectl binary, on the bundled models (stories260K for quick jobs,
// prose16M for jobs long enough to cancel, kill -9 or SIGTERM mid-run).
#include <httplib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/api/engine.h"
#include "core/api/job_spec.h"
#include "core/api/proto_json.h"
#include "core/api/report.h"
#include "core/api/spec_flags.h"
#include "core/common/build_info.h"
#include "core/testing/temp_dir.h"
#include "core/testing/test_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prunerd/v1/service.pb.h"
#include "server/testing/prometheus_text.h"
#include "server/testing/test_certs.h"
#include "tests/e2e/subprocess.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

constexpr char kStories[] = "models/stories260K/stories260K.bin";
constexpr char kProse[] = "models/prose16M";

// prunectl's JSON is the API's (core/api/proto_json.h): strict, every field known.
template <typename M>
M FromJson(const std::string& text) {
  absl::StatusOr<M> m = JsonToProto<M>(text);
  EXPECT_TRUE(m.ok()) << m.status() << " in: " << text;
  return m.ok() ? *m : M();
}

std::string ShellSha256(const std::string& path) {
  CommandResult r = RunCommand({"/usr/bin/sha256sum", path});
  return r.out.substr(0, 64);
}

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(BinDir().empty()) << "PRUNERD_BIN_DIR is not set";
    ASSERT_FALSE(TestData().empty()) << "PRUNERD_TEST_DATA is not set";
    tiny_ = TestData() + "/text/tinystories/tinystories_val_head.txt";
    wiki_ = TestData() + "/text/wikitext-2-raw/wiki.test.raw";
    dir_.Write("datasets/datasets.json",
               nlohmann::json{{"tinystories", tiny_}, {"wikitext2", wiki_}}.dump());
  }

  std::vector<std::string> DaemonArgs(std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {
        "--model-root",        TestData(), "--dataset-dir",    dir_.path() + "/datasets",
        "--progress-interval", "100ms",    "--shutdown-grace", "30s"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  void StartDaemon(std::vector<std::string> extra = {}) {
    daemon_ = std::make_unique<DaemonProcess>(dir_.path(), DaemonArgs(std::move(extra)));
    ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
  }
  void RestartDaemon() { ASSERT_TRUE(daemon_->Start()) << daemon_->Log(); }

  CommandResult Ctl(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {BinDir() + "/prunectl"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (daemon_ && std::find(args.begin(), args.end(), "--target") == args.end()) {
      argv.push_back("--target");
      argv.push_back(daemon_->target());
    }
    return RunCommand(argv, env);
  }

  static std::vector<std::string> StoriesJob() {
    return {"submit",      "--model",
            kStories,      "--method",
            "wanda",       "--ratio",
            "0.5",         "--calib-dataset",
            "tinystories", "--calib-samples",
            "8",           "--calib-seqlen",
            "128",         "--eval-dataset",
            "tinystories", "--eval-seqlen",
            "128",         "--eval-max-windows",
            "8",           "--skip-calib-eval"};
  }
  // About 1 s per layer, 8 layers, on 2 busy cores.
  static std::vector<std::string> ProseJob() {
    return {"submit", "--model",          kProse,      "--method",        "wanda", "--ratio",
            "0.5",    "--calib-dataset",  "wikitext2", "--calib-samples", "8",     "--calib-seqlen",
            "256",    "--skip-calib-eval"};
  }
  std::string Submit(std::vector<std::string> args) {
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.code, 0) << r.err;
    std::string id = r.out;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id;
  }

  v1::Job Get(const std::string& id) {
    CommandResult r = Ctl({"get", id, "--output", "json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return FromJson<v1::Job>(r.out);
  }
  // Polls until `pred(job)` (false after 120 s).
  bool WaitUntil(const std::string& id, const std::function<bool(const v1::Job&)>& pred) {
    for (int i = 0; i < 2400; ++i) {
      CommandResult r = Ctl({"get", id, "--output", "json"});
      if (r.code == 0 && pred(FromJson<v1::Job>(r.out))) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }
  static bool InPruneStage(const v1::Job& j, int64_t min_layer) {
    return j.state() == v1::JOB_STATE_RUNNING && j.progress().stage() == v1::STAGE_PRUNE &&
           j.progress().layer() >= min_layer;
  }
  std::vector<v1::JobEvent> Events(const std::string& id) {
    CommandResult r = Ctl({"watch", id, "--output", "json"});
    std::vector<v1::JobEvent> out;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      out.push_back(FromJson<v1::JobEvent>(std::string(line)));
    }
    return out;
  }

  TempDir dir_;
  std::string tiny_;
  std::string wiki_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(E2eTest, SubmitWatchDownloadAndReproduceThePerplexity) {
  StartDaemon();
  const std::string dl = dir_.path() + "/download";
  std::vector<std::string> args = StoriesJob();
  args.insert(args.end(), {"--request-id", "e2e-build-1", "--wait", "--output", "json",
                           "--download", dl, "--max-ppl-increase", "1000%"});
  CommandResult r = Ctl(args);
  ASSERT_EQ(r.code, 0) << r.err << daemon_->Log();
  v1::Job job = FromJson<v1::Job>(r.out);
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.request_id(), "e2e-build-1");
  EXPECT_NEAR(job.result().sparsity(), 0.5, 1e-6);
  ASSERT_TRUE(job.result().has_perplexity_pruned());
  ASSERT_TRUE(job.result().has_perplexity_dense());
  EXPECT_THAT(r.err, HasSubstr("gate    ok"));

  // Idempotent: the same request id gives the same job, nothing new is queued.
  CommandResult again = Ctl({"submit",
                             "--model",
                             kStories,
                             "--method",
                             "wanda",
                             "--ratio",
                             "0.5",
                             "--calib-dataset",
                             "tinystories",
                             "--calib-samples",
                             "8",
                             "--calib-seqlen",
                             "128",
                             "--eval-dataset",
                             "tinystories",
                             "--eval-seqlen",
                             "128",
                             "--eval-max-windows",
                             "8",
                             "--skip-calib-eval",
                             "--request-id",
                             "e2e-build-1"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out, job.id() + "\n");
  EXPECT_THAT(again.err, HasSubstr("matched an existing job"));

  // Every downloaded file matches the recorded sha256 (checked with sha256sum here).
  const v1::Job final_job = Get(job.id());
  int checked = 0;
  for (const v1::Artifact& a : job.result().artifacts()) {
    EXPECT_EQ(ShellSha256(dl + "/" + a.name()), a.sha256()) << a.name();
    ++checked;
  }
  EXPECT_GE(checked, 3);
  ASSERT_TRUE(std::filesystem::exists(dl + "/model/config.json"));

  // One typed report: report.json (as downloaded), GetJob's result and `prunectl get --output
  // json` carry the same message, field for field.
  const v1::PruneReport report = FromJson<v1::PruneReport>(ReadText(dl + "/report.json"));
  EXPECT_EQ(ProtoToJson(report), ProtoToJson(final_job.result().report()));
  EXPECT_EQ(ProtoToJson(report), ProtoToJson(job.result().report()));
  EXPECT_EQ(report.spec().method(), v1::METHOD_WANDA);
  EXPECT_EQ(report.build().version(), PrunerdVersion());
  EXPECT_EQ(report.build().commit(), PrunerdCommit());
  EXPECT_THAT(report.build().engine(), ::testing::StartsWith("torch "));
  // Provenance hashes, checked against sha256sum of the files the daemon read.
  ASSERT_EQ(report.model().files_size(), 1);  // the llama2.c .bin
  EXPECT_EQ(report.model().files(0).sha256(), ShellSha256(TestData() + "/" + kStories));
  EXPECT_EQ(report.model().tokenizer().sha256(), ShellSha256(report.model().tokenizer().path()));
  EXPECT_EQ(report.calibration().file().sha256(), ShellSha256(tiny_));
  EXPECT_EQ(report.calibration().tokens(), 8 * 128);
  EXPECT_EQ(report.calibration().tokens_sha256().size(), 64u);
  EXPECT_EQ(report.evaluation().file().sha256(), ShellSha256(tiny_));
  // The downloaded model, loaded by the engine, has the perplexity the report states.
  const double reported = job.result().perplexity_pruned();
  EXPECT_EQ(reported, SummarizeReport(report).perplexity_pruned.value_or(-1));
  EvalSpec eval{.model_path = dl + "/model",
                .data_path = tiny_,
                .seqlen = 128,
                .max_windows = 8,
                .device = "cpu",
                .dtype = v1::DTYPE_AUTO};
  absl::StatusOr<EvalResult> measured =
      EvaluatePerplexity(eval, [](const v1::EngineProgress&) { return true; });
  ASSERT_TRUE(measured.ok()) << measured.status();
  EXPECT_EQ(measured->windows, 8);
  EXPECT_NEAR(measured->perplexity, reported, 1e-4 * reported);
  // And the original model's perplexity is the reported dense one.
  EvalSpec dense = eval;
  dense.model_path = TestData() + "/" + kStories;
  absl::StatusOr<EvalResult> dense_ppl =
      EvaluatePerplexity(dense, [](const v1::EngineProgress&) { return true; });
  ASSERT_TRUE(dense_ppl.ok()) << dense_ppl.status();
  EXPECT_NEAR(dense_ppl->perplexity, job.result().perplexity_dense(), 1e-4 * dense_ppl->perplexity);

  // Watch replays from a sequence number and ends with the terminal event.
  CommandResult w = Ctl({"watch", job.id(), "--from-seq", "3", "--output", "json"});
  EXPECT_EQ(w.code, 0) << w.err;
  std::vector<std::string> lines = absl::StrSplit(w.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(FromJson<v1::JobEvent>(lines.front()).seq(), 3);
  EXPECT_EQ(FromJson<v1::JobEvent>(lines.back()).seq(), final_job.last_event_seq());
  EXPECT_EQ(FromJson<v1::JobEvent>(lines.back()).state(), v1::JOB_STATE_SUCCEEDED);

  // A strict gate fails the step with its own exit code.
  CommandResult gate = Ctl({"wait", job.id(), "--max-ppl-increase", "0.1%"});
  EXPECT_EQ(gate.code, 6) << gate.err;
  EXPECT_THAT(gate.err, HasSubstr("FAILED  perplexity increase"));

  // Resumable download: a correct partial file is resumed, a corrupt one is rejected.
  const std::string dl2 = dir_.path() + "/download2";
  const std::string weights = dl + "/model/model.safetensors";
  std::filesystem::create_directories(dl2 + "/model");
  {
    std::string whole = ReadText(weights);
    std::ofstream(dl2 + "/model/model.safetensors.part", std::ios::binary)
        << whole.substr(0, 100000);
  }
  CommandResult resumed =
      Ctl({"download", job.id(), "--dir", dl2, "--artifact", "model/model.safetensors"});
  EXPECT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_THAT(resumed.err, HasSubstr("resumed"));
  EXPECT_EQ(ShellSha256(dl2 + "/model/model.safetensors"), ShellSha256(weights));
  std::filesystem::remove(dl2 + "/model/model.safetensors");
  std::ofstream(dl2 + "/model/model.safetensors.part", std::ios::binary)
      << std::string(100000, 'x');
  CommandResult corrupt =
      Ctl({"download", job.id(), "--dir", dl2, "--artifact", "model/model.safetensors"});
  EXPECT_EQ(corrupt.code, 7) << corrupt.err;
  EXPECT_THAT(corrupt.err, HasSubstr("sha256 mismatch"));
  EXPECT_FALSE(std::filesystem::exists(dl2 + "/model/model.safetensors"));
}

TEST_F(E2eTest, EveryMethodRunsThroughTheDaemon) {
  StartDaemon();
  const std::vector<std::string> common = {
      "submit", "--model",        kStories, "--calib-dataset",  "tinystories", "--calib-samples",
      "8",      "--calib-seqlen", "128",    "--skip-calib-eval"};
  struct M {
    std::vector<std::string> args;
    double sparsity;  // expected; < 0: only > 0
  };
  const std::vector<M> methods = {
      {{"--method", "magnitude", "--ratio", "0.5"}, 0.5},
      {{"--method", "wanda", "--pattern", "2:4"}, 0.5},
      {{"--method", "sparsegpt", "--pattern", "2:4"}, 0.5},
      // 0.5 of every row of 64 or 172 inputs is a whole number of weights: exactly 0.5.
      {{"--method", "barber", "--barber-init", "wanda", "--ratio", "0.5"}, 0.5},
      {{"--method", "transact", "--attn-ratio", "0.5", "--mlp-ratio", "0.5"}, -1},
  };
  std::vector<std::string> ids;
  for (const M& m : methods) {
    std::vector<std::string> a = common;
    a.insert(a.end(), m.args.begin(), m.args.end());
    ids.push_back(Submit(a));  // queued behind each other on the one CPU worker
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    CommandResult r = Ctl({"wait", ids[i], "--quiet", "--output", "json"});
    ASSERT_EQ(r.code, 0) << methods[i].args[1] << ": " << r.err;
    v1::Job j = FromJson<v1::Job>(r.out);
    if (methods[i].sparsity >= 0) {
      EXPECT_NEAR(j.result().sparsity(), methods[i].sparsity, 1e-3) << methods[i].args[1];
    } else {
      EXPECT_GT(j.result().sparsity(), 0.1) << methods[i].args[1];
    }
  }
}

TEST_F(E2eTest, CancelAQueuedAndARunningJob) {
  StartDaemon();
  const std::string running = Submit(ProseJob());
  const std::string queued = Submit(StoriesJob());
  CommandResult cq = Ctl({"cancel", queued});
  EXPECT_EQ(cq.code, 0) << cq.err;
  EXPECT_EQ(Get(queued).state(), v1::JOB_STATE_CANCELLED);
  ASSERT_TRUE(WaitUntil(running, [](const v1::Job& j) { return InPruneStage(j, 0); }))
      << daemon_->Log();
  CommandResult cr = Ctl({"cancel", running, "--wait"});
  EXPECT_EQ(cr.code, 0) << cr.err;
  EXPECT_THAT(cr.out, HasSubstr("cancelled"));
  v1::Job j = Get(running);
  EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(j.error().reason(), "cancelled");
  EXPECT_LT(j.progress().fraction(), 1.0);
  // wait/watch report a cancelled job with exit code 2; the daemon keeps serving.
  EXPECT_EQ(Ctl({"wait", running}).code, 2);
  EXPECT_EQ(Ctl({"watch", running}).code, 2);
  CommandResult after = Ctl([] {
    auto a = StoriesJob();
    a.push_back("--wait");
    return a;
  }());
  EXPECT_EQ(after.code, 0) << after.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/data/jobs/" + running + "/model"));
}

TEST_F(E2eTest, KillDashNineMidRunRecoversEveryJob) {
  StartDaemon();
  const std::string long_job = Submit(ProseJob());
  std::vector<std::string> queued;
  for (int i = 0; i < 3; ++i) {
    auto a = StoriesJob();
    a.insert(a.end(), {"--calib-seed", std::to_string(i), "--label", "batch=kill9"});
    queued.push_back(Submit(a));
  }
  ASSERT_TRUE(WaitUntil(long_job, [](const v1::Job& j) { return InPruneStage(j, 1); }))
      << daemon_->Log();
  ASSERT_TRUE(daemon_->Kill(SIGKILL));
  ASSERT_EQ(daemon_->Wait(absl::Seconds(10)), 128 + SIGKILL);
  RestartDaemon();
  // Recovery happened before the daemon reported ready: nothing is left RUNNING from before.
  v1::Job recovered = Get(long_job);
  EXPECT_EQ(recovered.crash_recoveries(), 1);
  EXPECT_NE(recovered.state(), v1::JOB_STATE_FAILED) << recovered.error().message();
  // Every job reaches SUCCEEDED: the interrupted one is re-run, the queued ones survive.
  CommandResult w = Ctl({"wait", long_job, "--quiet", "--wait-timeout", "240"});
  EXPECT_EQ(w.code, 0) << w.err << daemon_->Log();
  v1::Job done = Get(long_job);
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.attempt(), 2);
  bool interrupted = false;
  for (const v1::JobEvent& ev : Events(long_job)) {
    if (ev.type() == v1::JobEvent::TYPE_INTERRUPTED) {
      interrupted = true;
      EXPECT_THAT(ev.message(), HasSubstr("stopped unexpectedly"));
    }
  }
  EXPECT_TRUE(interrupted);
  for (const std::string& id : queued) {
    CommandResult q = Ctl({"wait", id, "--quiet", "--wait-timeout", "120"});
    EXPECT_EQ(q.code, 0) << id << ": " << q.err;
  }
  CommandResult list =
      Ctl({"list", "--label", "batch=kill9", "--state", "succeeded", "--output", "json"});
  EXPECT_EQ(FromJson<v1::ListJobsResponse>(list.out).jobs_size(), 3);
}

TEST_F(E2eTest, SigtermDrainsAndMetricsCount) {
  StartDaemon();
  const std::string http = daemon_->http();
  httplib::Client client(http.substr(0, http.rfind(':')),
                         std::stoi(http.substr(http.rfind(':') + 1)));
  auto scrape = [&]() {
    auto res = client.Get("/metrics");
    EXPECT_TRUE(res);
    auto parsed = ParsePrometheusText(res ? res->body : "");
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed.ok() ? *parsed : std::map<std::string, PromFamily>{};
  };
  auto m0 = scrape();
  EXPECT_EQ(*m0.at("prunerd_jobs_submitted_total").Find({{"method", "wanda"}}), 0);
  auto a = StoriesJob();
  a.push_back("--wait");
  ASSERT_EQ(Ctl(a).code, 0);
  auto m1 = scrape();
  EXPECT_EQ(*m1.at("prunerd_jobs_submitted_total").Find({{"method", "wanda"}}), 1);
  EXPECT_EQ(
      *m1.at("prunerd_jobs_finished_total").Find({{"method", "wanda"}, {"outcome", "succeeded"}}),
      1);
  EXPECT_EQ(*m1.at("prunerd_jobs").Find({{"state", "succeeded"}}), 1);
  EXPECT_EQ(*m1.at("prunerd_calibration_tokens_total").Find({{"method", "wanda"}}), 8 * 128);
  EXPECT_EQ(*m1.at("prunerd_layer_duration_seconds")
                 .Find({{"method", "wanda"}}, "prunerd_layer_duration_seconds_count"),
            5);  // stories260K has 5 layers
  EXPECT_EQ(*m1.at("prunerd_job_duration_seconds")
                 .Find({{"method", "wanda"}}, "prunerd_job_duration_seconds_count"),
            1);

  // SIGTERM while a job runs: it stops at a layer boundary, is recorded as interrupted, the
  // watch stream gets a final event, and the daemon exits 0.
  const std::string id = Submit(ProseJob());
  ASSERT_TRUE(WaitUntil(id, [](const v1::Job& j) { return InPruneStage(j, 0); }));
  Subprocess watcher({BinDir() + "/prunectl", "watch", id, "--target", daemon_->target(),
                      "--reconnect-timeout", "1"},
                     dir_.path() + "/watch.out", dir_.path() + "/watch.err");
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(daemon_->Kill(SIGTERM));
  std::optional<int> code = daemon_->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.has_value()) << "daemon did not exit after SIGTERM";
  EXPECT_EQ(*code, 0) << daemon_->Log();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(20));
  EXPECT_THAT(daemon_->Log(), HasSubstr("shut down in"));
  EXPECT_EQ(watcher.Wait(absl::Seconds(30)), 3);  // gave up reconnecting: unreachable
  const std::string watched = ReadText(dir_.path() + "/watch.out");
  EXPECT_THAT(watched, HasSubstr("(interrupted)"));
  EXPECT_THAT(watched, HasSubstr("(stream end)"));

  RestartDaemon();
  ASSERT_TRUE(WaitUntil(
      id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING && j.attempt() == 2; }));
  // Cancel it (no need to run it to the end here), then read its whole event history.
  CommandResult cancel = Ctl({"cancel", id, "--wait"});
  EXPECT_EQ(cancel.code, 0) << cancel.err;
  v1::Job j = Get(id);
  EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(j.attempt(), 2);
  EXPECT_EQ(j.crash_recoveries(), 0);  // a graceful stop is not a crash
  bool graceful = false;
  for (const v1::JobEvent& ev : Events(id)) {
    graceful = graceful || (ev.type() == v1::JobEvent::TYPE_INTERRUPTED &&
                            absl::StrContains(ev.message(), "shutdown"));
  }
  EXPECT_TRUE(graceful);
}

TEST_F(E2eTest, BadInputsAndCredentialsGetDistinctExitCodes) {
  const std::string tokens = dir_.Write("tokens",
                                        "reader-token-0123456789 read dashboards\n"
                                        "submit-token-0123456789 submit ci\n");
  ::chmod(tokens.c_str(), 0600);
  // A second root holding a corrupt model: it passes submit (the file exists) and fails in
  // the engine.
  dir_.Write("badmodels/corrupt.bin", std::string(4096, '\x7f'));
  StartDaemon({"--token-file", tokens, "--model-root", dir_.path() + "/badmodels"});
  const std::vector<std::string> submit_env = {"PRUNECTL_TOKEN=submit-token-0123456789"};
  auto with = [](std::vector<std::string> base, std::vector<std::string> extra) {
    base.insert(base.end(), extra.begin(), extra.end());
    return base;
  };
  struct Case {
    std::string what;
    std::vector<std::string> args;
    std::vector<std::string> env;
    int code;
    std::string message;
  };
  const std::vector<std::string> base = {
      "submit", "--calib-dataset", "tinystories", "--calib-samples", "4", "--calib-seqlen", "64"};
  const std::vector<Case> cases = {
      {"no token",
       with(base, {"--model", kStories, "--method", "wanda"}),
       {},
       5,
       "UNAUTHENTICATED"},
      {"bad token",
       with(base, {"--model", kStories, "--method", "wanda", "--token", "nope-nope-nope-nope"}),
       {},
       5,
       "UNAUTHENTICATED: invalid token"},
      {"read-only token",
       with(base, {"--model", kStories, "--method", "wanda"}),
       {"PRUNECTL_TOKEN=reader-token-0123456789"},
       5,
       "PERMISSION_DENIED"},
      // Names are checked by the client against the proto's enum before any call.
      {"unknown method", with(base, {"--model", kStories, "--method", "prune-it"}), submit_env, 4,
       "--method: unknown value \"prune-it\" (expected magnitude, wanda, sparsegpt, barber, "
       "transact)"},
      {"no method", with(base, {"--model", kStories}), submit_env, 4,
       "INVALID_ARGUMENT: spec.method: is required"},
      {"ratio 1.5", with(base, {"--model", kStories, "--method", "wanda", "--ratio", "1.5"}),
       submit_env, 4, "INVALID_ARGUMENT: spec.ratio"},
      {"malformed N:M", with(base, {"--model", kStories, "--method", "wanda", "--pattern", "2-4"}),
       submit_env, 4, "--pattern: malformed N:M pattern \"2-4\""},
      {"N >= M", with(base, {"--model", kStories, "--method", "wanda", "--pattern", "4:4"}),
       submit_env, 4, "--pattern: N:M pattern \"4:4\" needs 0 < N < M"},
      {"outside roots", with(base, {"--model", "/etc/passwd", "--method", "wanda"}), submit_env, 4,
       "INVALID_ARGUMENT: spec.model: path is outside"},
      {"symlink-free escape",
       with(base, {"--model", "models/../../etc/passwd", "--method", "wanda"}), submit_env, 4,
       "\"..\" is not allowed"},
      {"missing model", with(base, {"--model", "models/none.bin", "--method", "wanda"}), submit_env,
       4, "NOT_FOUND: spec.model"},
      {"bad flag", with(base, {"--model", kStories, "--method", "wanda", "--bogus"}), submit_env, 4,
       "unknown option --bogus"},
  };
  for (const Case& c : cases) {
    CommandResult r = Ctl(c.args, c.env);
    EXPECT_EQ(r.code, c.code) << c.what << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.what;
  }
  // The daemon kept serving and queued nothing.
  CommandResult list =
      Ctl({"list", "--output", "json"}, {"PRUNECTL_TOKEN=reader-token-0123456789"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(FromJson<v1::ListJobsResponse>(list.out).jobs_size(), 0);
  CommandResult ok = Ctl(
      with(base, {"--model", kStories, "--method", "magnitude", "--wait", "--quiet"}), submit_env);
  EXPECT_EQ(ok.code, 0) << ok.err;
  // A corrupt model fails its job (exit 1) with a reason; the daemon keeps serving.
  CommandResult bad = Ctl(with(base, {"--model", dir_.path() + "/badmodels/corrupt.bin", "--method",
                                      "wanda", "--wait", "--output", "json"}),
                          submit_env);
  EXPECT_EQ(bad.code, 1) << bad.err;
  v1::Job failed = FromJson<v1::Job>(bad.out);
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_FALSE(failed.error().reason().empty());
  EXPECT_FALSE(failed.error().message().empty());
  EXPECT_EQ(Ctl({"info"}, {"PRUNECTL_TOKEN=reader-token-0123456789"}).code, 0);
  // Nobody listening: unreachable.
  CommandResult down = Ctl({"info", "--target", "127.0.0.1:1", "--timeout", "2"});
  EXPECT_EQ(down.code, 3) << down.err;
  EXPECT_THAT(down.err, HasSubstr("UNAVAILABLE"));
}

TEST_F(E2eTest, MutualTlsThroughPrunectl) {
  TestCerts certs(dir_.Mkdir("certs"));
  ASSERT_TRUE(certs.ok()) << certs.error();
  StartDaemon({"--tls-cert", certs.server_cert(), "--tls-key", certs.server_key(),
               "--tls-client-ca", certs.ca()});
  const std::vector<std::string> tls = {"--ca-cert",         certs.ca(),     "--client-cert",
                                        certs.client_cert(), "--client-key", certs.client_key()};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), tls.begin(), tls.end());
    return a;
  };
  CommandResult info = Ctl(with({"info"}));
  EXPECT_EQ(info.code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("prunerd"));
  CommandResult health = Ctl(with({"health"}));
  EXPECT_EQ(health.code, 0);
  EXPECT_EQ(health.out, "SERVING\n");
  // Without a client certificate, or without TLS, the handshake fails: unreachable.
  EXPECT_EQ(Ctl({"info", "--ca-cert", certs.ca(), "--timeout", "3"}).code, 3);
  EXPECT_EQ(Ctl({"info", "--timeout", "3"}).code, 3);
  CommandResult rogue = Ctl({"info", "--ca-cert", certs.ca(), "--client-cert", certs.rogue_cert(),
                             "--client-key", certs.rogue_key(), "--timeout", "3"});
  EXPECT_EQ(rogue.code, 3);
  CommandResult valid = Ctl(with({"submit", "--model", kStories, "--method", "wanda", "--ratio",
                                  "0.3", "--calib-dataset", "tinystories", "--validate-only"}));
  EXPECT_EQ(valid.code, 0) << valid.err;
  EXPECT_EQ(valid.out, "spec is valid\n");
}

}  // namespace
}  // namespace prunerd

namespace prunerd {
namespace {

// The help line of each option: "--name ..." up to the end of its description.
std::map<std::string, std::string> HelpLines(const std::string& help) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::StartsWith(line, "--")) continue;
    const size_t end = line.find_first_of(" =");
    out[std::string(line.substr(2, end == absl::string_view::npos ? line.npos : end - 2))] =
        std::string(line);
  }
  return out;
}

// `prunectl submit` and `prunerd oneshot` take the spec through the same flags, with the same
// names, values and help (core/api/spec_flags.h), read from the binaries' own --help.
TEST(CliSpecFlagsTest, SubmitAndOneshotListTheSameSpecFlags) {
  const CommandResult submit = RunCommand({BinDir() + "/prunectl", "submit", "--help"});
  const CommandResult oneshot = RunCommand({BinDir() + "/prunerd", "oneshot", "--help"});
  ASSERT_EQ(submit.code, 0) << submit.err;
  ASSERT_EQ(oneshot.code, 0) << oneshot.err;
  const auto a = HelpLines(submit.out), b = HelpLines(oneshot.out);
  const std::vector<std::string> names = SpecFlags::FlagNames();
  ASSERT_GE(names.size(), 30u);
  for (const std::string& name : names) {
    ASSERT_TRUE(a.count(name)) << "prunectl submit lacks --" << name;
    ASSERT_TRUE(b.count(name)) << "prunerd oneshot lacks --" << name;
    EXPECT_EQ(a.at(name), b.at(name)) << "--" << name;
  }
  // The old, diverging offline names are gone.
  for (const char* old : {"nsamples", "init", "tau", "calib", "eval", "granularity"}) {
    EXPECT_FALSE(b.count(old)) << "prunerd oneshot still has --" << old;
  }
}

// Every flag a README example gives to prunectl submit/plan or prunerd oneshot exists.
TEST(CliSpecFlagsTest, ReadmeExamplesUseExistingFlags) {
  const std::string readme = ReadText(SourceDir() + "/README.md");
  ASSERT_FALSE(readme.empty());
  const auto submit = HelpLines(RunCommand({BinDir() + "/prunectl", "submit", "--help"}).out);
  const auto oneshot = HelpLines(RunCommand({BinDir() + "/prunerd", "oneshot", "--help"}).out);
  int checked = 0;
  std::string command;  // the example being read, across "\" continuations
  for (absl::string_view raw : absl::StrSplit(readme, '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (absl::StrContains(line, "prunectl submit")) command = "submit";
    if (absl::StrContains(line, "prunerd oneshot")) command = "oneshot";
    if (command.empty()) continue;
    for (absl::string_view word : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      if (!absl::StartsWith(word, "--") || word.size() < 3) continue;
      std::string name(word.substr(2));
      name = name.substr(0, name.find_first_of("=]`),"));
      const auto& known = command == "submit" ? submit : oneshot;
      EXPECT_TRUE(known.count(name) || name == "help")
          << "README: " << command << " has no --" << name << " (line: " << line << ")";
      ++checked;
    }
    if (!absl::EndsWith(line, "\\")) command.clear();
  }
  EXPECT_GE(checked, 10);
}

}  // namespace
}  // namespace prunerd
