#include "server/job_manager.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/sqlite_job_store.h"
#include "server/testing/fake_job_runner.h"

namespace prunerd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ShellSha256(const std::string& path) {
  std::string out;
  FILE* p = popen(("sha256sum '" + path + "'").c_str(), "r");
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out.substr(0, 64);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("models/tiny.bin", "weights");
    dir_.Write("datasets/wiki.raw", "text");
    roots_ = *PathPolicy::Create({dir_.path() + "/models"});
    datasets_ = std::make_unique<DatasetRegistry>(dir_.path() + "/datasets");
    resolver_ = std::make_unique<SpecResolver>(&roots_, datasets_.get());
    artifacts_ = std::make_unique<ArtifactStore>(dir_.path() + "/data", FileSystem::Default());
    metrics_ = std::make_unique<ServerMetrics>("0.1.0", "test");
    OpenStore();
  }
  void TearDown() override { manager_.reset(); }

  void OpenStore() {
    store_.reset();
    auto s = SqliteJobStore::Open(dir_.path() + "/jobs.db");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }

  void StartManager(JobManager::Options opts = {}) {
    opts.progress_interval = opts.progress_interval == absl::Milliseconds(500)
                                 ? absl::ZeroDuration()
                                 : opts.progress_interval;
    opts.watch_poll = absl::Milliseconds(20);
    opts.artifact_chunk_bytes = 1024;
    opts.version = "0.1.0";
    manager_ = std::make_unique<JobManager>(opts, JobManager::Deps{.store = store_.get(),
                                                                   .runner = &runner_,
                                                                   .artifacts = artifacts_.get(),
                                                                   .resolver = resolver_.get(),
                                                                   .datasets = datasets_.get(),
                                                                   .metrics = metrics_.get(),
                                                                   .clock = RealClock::Get()});
    ASSERT_TRUE(manager_->Recover().ok());
    manager_->Start();
  }

  static v1::SubmitJobRequest Req(uint64_t marker = 0, int priority = 0,
                                  const std::string& request_id = "") {
    v1::SubmitJobRequest r;
    r.set_request_id(request_id);
    v1::JobSpec* s = r.mutable_spec();
    s->set_model("tiny.bin");
    s->set_method(v1::METHOD_WANDA);
    s->set_ratio(0.5);
    s->set_priority(priority);
    s->mutable_calibration()->set_dataset("wiki");
    s->mutable_calibration()->set_num_samples(2);
    s->mutable_calibration()->set_seqlen(16);
    s->mutable_calibration()->set_seed(marker);  // lets tests tell runs apart
    return r;
  }

  v1::Job Submit(const v1::SubmitJobRequest& r, const Principal& who = {}) {
    auto s = manager_->Submit(r, who);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? s->job : v1::Job();
  }

  v1::Job WaitFor(const std::string& id, v1::JobState state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::Job job;
    while (absl::Now() < deadline) {
      auto j = manager_->Get(id);
      if (j.ok()) {
        job = *j;
        if (job.state() == state) return job;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "job " << id << " never reached " << v1::JobState_Name(state) << "; it is "
                  << v1::JobState_Name(job.state());
    return job;
  }

  void WaitForLayer(const std::string& id, int64_t layer) {
    for (int i = 0; i < 4000; ++i) {
      auto j = manager_->Get(id);
      if (j.ok() && j->progress().stage() == v1::STAGE_PRUNE && j->progress().layer() >= layer)
        return;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "job " << id << " never reported layer " << layer;
  }

  std::vector<v1::JobEvent> Events(const std::string& id) {
    auto e = store_->Events(id, 1);
    EXPECT_TRUE(e.ok());
    return e.ok() ? *e : std::vector<v1::JobEvent>{};
  }

  TempDir dir_;
  PathPolicy roots_;
  std::unique_ptr<DatasetRegistry> datasets_;
  std::unique_ptr<SpecResolver> resolver_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<SqliteJobStore> store_;
  FakeJobRunner runner_;
  std::unique_ptr<JobManager> manager_;
};

TEST_F(JobManagerTest, SubmittedJobRunsToSuccessWithHashedArtifacts) {
  runner_.SetScript({.layers = 3, .ppl_dense = 20, .ppl_pruned = 25});
  StartManager();
  v1::Job job = Submit(Req());
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(job.id(), ::testing::MatchesRegex("j-[0-9a-f]{12}-[0-9a-f]{8}"));
  v1::Job done = WaitFor(job.id(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.attempt(), 1);
  EXPECT_EQ(done.device(), "cpu");
  EXPECT_DOUBLE_EQ(done.result().perplexity_dense(), 20);
  EXPECT_DOUBLE_EQ(done.result().perplexity_pruned(), 25);
  EXPECT_DOUBLE_EQ(done.result().sparsity(), 0.5);
  EXPECT_EQ(done.result().report().spec().method(), v1::METHOD_WANDA);
  // The event log is added right after the terminal event: wait for it.
  for (int i = 0; i < 400 && done.result().artifacts_size() < 4; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
    done = *manager_->Get(job.id());
  }
  std::vector<std::string> names;
  for (const v1::Artifact& a : done.result().artifacts()) {
    names.push_back(a.name());
    const std::string path = artifacts_->JobDir(job.id()) + "/" + a.name();
    EXPECT_EQ(a.sha256(), ShellSha256(path)) << a.name();
    EXPECT_EQ(a.size_bytes(), static_cast<int64_t>(std::filesystem::file_size(path)));
  }
  EXPECT_THAT(names, ElementsAre("model/config.json", "model/model.safetensors", "report.json",
                                 "events.jsonl"));
  // The engine got a resolved spec on the worker's device, writing into a temp dir.
  ASSERT_EQ(runner_.specs().size(), 1u);
  const v1::JobSpec spec = runner_.specs()[0];
  const RunOptions run = runner_.run_options()[0];
  EXPECT_EQ(run.device, "cpu");
  EXPECT_EQ(spec.model(), dir_.path() + "/models/tiny.bin");
  EXPECT_EQ(spec.calibration().uri(), dir_.path() + "/datasets/wiki.raw");
  EXPECT_EQ(run.output_dir, artifacts_->JobDir(job.id()) + "/model.tmp");
  EXPECT_FALSE(std::filesystem::exists(run.output_dir));

  // Events: queued, running, load, 3 layers, eval (ppl), succeeded; numbered 1..n.
  std::vector<v1::JobEvent> ev = Events(job.id());
  ASSERT_EQ(ev.size(), 8u);
  for (size_t i = 0; i < ev.size(); ++i) EXPECT_EQ(ev[i].seq(), int64_t(i + 1));
  EXPECT_EQ(ev[0].state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(ev[1].type(), v1::JobEvent::TYPE_STATE_CHANGED);
  EXPECT_EQ(ev[1].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(ev[3].progress().stage(), v1::STAGE_PRUNE);
  EXPECT_EQ(ev[3].progress().layer(), 0);
  EXPECT_EQ(ev[3].progress().layers(), 3);
  EXPECT_TRUE(ev[3].progress().has_eta_seconds());
  EXPECT_DOUBLE_EQ(ev[6].progress().perplexity_pruned(), 25);
  EXPECT_EQ(ev[7].state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(ev[7].result().artifacts_size(), 3);
  // events.jsonl holds every event, one per line.
  std::vector<std::string> lines = absl::StrSplit(
      ReadAll(artifacts_->JobDir(job.id()) + "/events.jsonl"), '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), ev.size());
  EXPECT_THAT(lines.back(), HasSubstr("JOB_STATE_SUCCEEDED"));
}

TEST_F(JobManagerTest, SubmitIsIdempotentOnRequestId) {
  StartManager({.devices = {}});
  auto a = manager_->Submit(Req(1, 0, "ci-run-77"), {});
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->created);
  auto b = manager_->Submit(Req(1, 0, "ci-run-77"), {});
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->created);
  EXPECT_EQ(a->job.id(), b->job.id());
  auto c = manager_->Submit(Req(2, 0, "ci-run-77"), {});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(manager_->scheduler().QueueDepth(), 1u);
  EXPECT_EQ(manager_->Submit(Req(1, 0, "has space"), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // validate_only creates nothing.
  v1::SubmitJobRequest v = Req(3);
  v.set_validate_only(true);
  auto vr = manager_->Submit(v, {});
  ASSERT_TRUE(vr.ok());
  EXPECT_FALSE(vr->created);
  EXPECT_TRUE(vr->job.id().empty());
  EXPECT_EQ(manager_->scheduler().QueueDepth(), 1u);
  // Invalid specs are rejected and nothing is queued.
  v1::SubmitJobRequest bad = Req(4);
  bad.mutable_spec()->set_ratio(1.5);
  EXPECT_EQ(manager_->Submit(bad, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->scheduler().QueueDepth(), 1u);
  auto all = manager_->List({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->jobs_size(), 1);
}

TEST_F(JobManagerTest, PriorityThenFifoAndCancelOfAQueuedJob) {
  runner_.SetScript({.layers = 1, .gated = true});
  StartManager();
  v1::Job a = Submit(Req(1));
  ASSERT_TRUE(runner_.WaitForBlocked());  // a runs; the rest queue up behind it
  v1::Job b = Submit(Req(2, 0));
  v1::Job c = Submit(Req(3, 5));
  v1::Job d = Submit(Req(4, 0));
  v1::Job e = Submit(Req(5, -1));
  EXPECT_THAT(manager_->scheduler().QueuedIds(), ElementsAre(c.id(), b.id(), d.id(), e.id()));
  auto cancelled = manager_->Cancel(d.id(), {});
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled->error().reason(), "cancelled");
  EXPECT_EQ(cancelled->error().code(), 1);
  runner_.AllowLayers(100);
  WaitFor(e.id(), v1::JOB_STATE_SUCCEEDED);
  std::vector<uint64_t> order;
  for (const v1::JobSpec& s : runner_.specs()) order.push_back(s.calibration().seed());
  EXPECT_THAT(order, ElementsAre(1, 3, 2, 5));
  EXPECT_EQ(manager_->Get(d.id())->state(), v1::JOB_STATE_CANCELLED);
  // Cancelling a finished job is a precondition failure; an unknown one is not found.
  EXPECT_EQ(manager_->Cancel(a.id(), {}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Cancel("j-000000000000-00000000", {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->Get("bad id!").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JobManagerTest, CancelOfARunningJobStopsAtTheNextLayerBoundary) {
  runner_.SetScript({.layers = 5, .gated = true});
  StartManager();
  const Principal owner{.name = "ci", .role = Role::kSubmit};
  v1::Job job = Submit(Req(), owner);
  ASSERT_TRUE(runner_.WaitForBlocked());
  runner_.AllowLayers(1);  // layer 0 completes
  WaitForLayer(job.id(), 0);
  // Someone else's submit token may not cancel it; the owner may.
  const Principal other{.name = "bob", .role = Role::kSubmit};
  EXPECT_EQ(manager_->Cancel(job.id(), other).status().code(), absl::StatusCode::kPermissionDenied);
  auto c = manager_->Cancel(job.id(), owner);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(c->cancel_requested());
  runner_.AllowLayers(1);  // layer 1 finishes; the callback returns false there
  v1::Job done = WaitFor(job.id(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(done.error().reason(), "cancelled");
  // Layers 0 and 1 were reported, nothing after.
  int prune_events = 0;
  for (const v1::JobEvent& ev : Events(job.id())) {
    if (ev.type() == v1::JobEvent::TYPE_PROGRESS && absl::StartsWith(ev.message(), "layer ")) {
      ++prune_events;
    }
  }
  EXPECT_EQ(prune_events, 2);
  EXPECT_FALSE(std::filesystem::exists(artifacts_->JobDir(job.id()) + "/model"));
  EXPECT_FALSE(std::filesystem::exists(artifacts_->JobDir(job.id()) + "/model.tmp"));
}

TEST_F(JobManagerTest, AFailedJobRecordsItsReasonAndTheDaemonKeepsServing) {
  runner_.SetScript({.layers = 3,
                     .fail_with = absl::ResourceExhaustedError("CUDA out of memory"),
                     .fail_at_layer = 1});
  StartManager();
  v1::Job bad = Submit(Req(1));
  v1::Job failed = WaitFor(bad.id(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(failed.error().reason(), "out_of_memory");
  EXPECT_EQ(failed.error().code(), 8);
  EXPECT_THAT(failed.error().message(), HasSubstr("CUDA out of memory"));
  EXPECT_FALSE(std::filesystem::exists(artifacts_->JobDir(bad.id()) + "/model.tmp"));
  runner_.SetScript({.layers = 2});
  v1::Job good = Submit(Req(2));
  WaitFor(good.id(), v1::JOB_STATE_SUCCEEDED);
  runner_.SetScript({.layers = 2, .fail_with = absl::InternalError("c10::Error: boom")});
  v1::Job internal = Submit(Req(3));
  EXPECT_EQ(WaitFor(internal.id(), v1::JOB_STATE_FAILED).error().reason(), "engine_error");
  std::string text = metrics_->Render();
  EXPECT_THAT(text,
              HasSubstr("prunerd_jobs_finished_total{method=\"wanda\",outcome=\"failed\"} 2"));
}

TEST_F(JobManagerTest, WatchReplaysFromASequenceNumberAndWatchersAgree) {
  runner_.SetScript({.layers = 4, .gated = true});
  StartManager();
  v1::Job job = Submit(Req());
  ASSERT_TRUE(runner_.WaitForBlocked());
  std::vector<v1::JobEvent> w1, w2;
  absl::Status s1, s2;
  std::thread t1([&] {
    s1 = manager_->Watch(
        job.id(), 0,
        [&](const v1::JobEvent& e) {
          w1.push_back(e);
          return true;
        },
        [] { return false; });
  });
  std::thread t2([&] {
    s2 = manager_->Watch(
        job.id(), 0,
        [&](const v1::JobEvent& e) {
          w2.push_back(e);
          return true;
        },
        [] { return false; });
  });
  absl::SleepFor(absl::Milliseconds(50));
  runner_.AllowLayers(4);
  t1.join();
  t2.join();
  ASSERT_TRUE(s1.ok()) << s1;
  ASSERT_TRUE(s2.ok()) << s2;
  ASSERT_EQ(w1.size(), w2.size());
  for (size_t i = 0; i < w1.size(); ++i) {
    EXPECT_EQ(w1[i].SerializeAsString(), w2[i].SerializeAsString()) << i;
    EXPECT_EQ(w1[i].seq(), int64_t(i + 1));
  }
  EXPECT_EQ(w1.back().state(), v1::JOB_STATE_SUCCEEDED);
  // The stream held exactly the stored events.
  std::vector<v1::JobEvent> stored = Events(job.id());
  ASSERT_EQ(stored.size(), w1.size());
  // Replay of a finished job from seq 4: events 4..n, then the stream ends.
  std::vector<int64_t> seqs;
  ASSERT_TRUE(manager_
                  ->Watch(
                      job.id(), 4,
                      [&](const v1::JobEvent& e) {
                        seqs.push_back(e.seq());
                        return true;
                      },
                      [] { return false; })
                  .ok());
  ASSERT_FALSE(seqs.empty());
  EXPECT_EQ(seqs.front(), 4);
  EXPECT_EQ(seqs.back(), int64_t(stored.size()));
  EXPECT_EQ(seqs.size(), stored.size() - 3);
  // Past the end of a finished job: returns at once with nothing.
  int n = 0;
  EXPECT_TRUE(manager_
                  ->Watch(
                      job.id(), 1000,
                      [&](const v1::JobEvent&) {
                        ++n;
                        return true;
                      },
                      [] { return false; })
                  .ok());
  EXPECT_EQ(n, 0);
  EXPECT_EQ(manager_
                ->Watch(
                    "j-000000000000-00000000", 0, [](const v1::JobEvent&) { return true; },
                    [] { return false; })
                .code(),
            absl::StatusCode::kNotFound);
  // A client that goes away ends the stream with Cancelled.
  EXPECT_EQ(manager_
                ->Watch(
                    job.id(), 0, [](const v1::JobEvent&) { return false; }, [] { return false; })
                .code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(manager_->watch_streams(), 0);
}

TEST_F(JobManagerTest, DrainInterruptsRunningJobsAndEndsStreams) {
  runner_.SetScript({.layers = 3, .gated = true});
  StartManager();
  v1::Job job = Submit(Req());
  ASSERT_TRUE(runner_.WaitForBlocked());
  std::vector<v1::JobEvent> seen;
  absl::Status watch_status;
  std::thread watcher([&] {
    watch_status = manager_->Watch(
        job.id(), 0,
        [&](const v1::JobEvent& e) {
          seen.push_back(e);
          return true;
        },
        [] { return false; });
  });
  absl::SleepFor(absl::Milliseconds(50));
  manager_->BeginDrain();
  EXPECT_EQ(manager_->Submit(Req(9), {}).status().code(), absl::StatusCode::kUnavailable);
  runner_.AllowLayers(1);
  ASSERT_TRUE(manager_->WaitForWorkers(absl::Now() + absl::Seconds(10)));
  manager_->EndStreams();
  watcher.join();
  EXPECT_EQ(watch_status.code(), absl::StatusCode::kUnavailable);
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[seen.size() - 2].type(), v1::JobEvent::TYPE_INTERRUPTED);
  EXPECT_EQ(seen.back().type(), v1::JobEvent::TYPE_STREAM_END);
  EXPECT_EQ(seen.back().seq(), 0);
  v1::Job after = *manager_->Get(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(after.attempt(), 1);
  EXPECT_EQ(after.crash_recoveries(), 0);
  EXPECT_THAT(metrics_->Render(),
              HasSubstr("prunerd_jobs_finished_total{method=\"wanda\",outcome=\"interrupted\"} 1"));

  // The next daemon runs it again from the start.
  manager_.reset();
  runner_.SetScript({.layers = 3});
  StartManager();
  v1::Job done = WaitFor(job.id(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.attempt(), 2);
}

TEST_F(JobManagerTest, RecoveryRequeuesCrashedJobsThenGivesUp) {
  // A previous daemon died with j-run RUNNING (no crash yet), j-twice RUNNING (crashed once
  // before) and j-q QUEUED.
  auto make = [&](const std::string& id, v1::JobState state, int crashes, uint64_t marker) {
    v1::SubmitJobRequest r = Req(marker);
    v1::Job job;
    job.set_id(id);
    *job.mutable_spec() = r.spec();
    job.set_state(v1::JOB_STATE_QUEUED);
    v1::JobEvent ev;
    ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
    ASSERT_TRUE(store_->Create(job, ev, "h").ok());
    if (state == v1::JOB_STATE_RUNNING) {
      ASSERT_TRUE(store_
                      ->Update(id,
                               [&](v1::Job& j, v1::JobEvent& e) {
                                 j.set_state(state);
                                 j.set_attempt(1);
                                 j.set_device("cuda:0");
                                 j.set_crash_recoveries(crashes);
                                 j.mutable_progress()->set_stage(v1::STAGE_PRUNE);
                                 e.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
                                 return absl::OkStatus();
                               })
                      .ok());
    }
  };
  make("j-run", v1::JOB_STATE_RUNNING, 0, 1);
  make("j-twice", v1::JOB_STATE_RUNNING, 1, 2);
  make("j-q", v1::JOB_STATE_QUEUED, 0, 3);
  runner_.SetScript({.layers = 1});
  StartManager({.max_crash_retries = 1});
  v1::Job twice = *manager_->Get("j-twice");
  EXPECT_EQ(twice.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(twice.error().reason(), "daemon_restart");
  EXPECT_THAT(twice.error().message(), HasSubstr("stopped unexpectedly"));
  v1::Job run = WaitFor("j-run", v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(run.crash_recoveries(), 1);
  EXPECT_EQ(run.attempt(), 2);
  WaitFor("j-q", v1::JOB_STATE_SUCCEEDED);
  bool interrupted = false;
  for (const v1::JobEvent& ev : Events("j-run")) {
    interrupted = interrupted || ev.type() == v1::JobEvent::TYPE_INTERRUPTED;
  }
  EXPECT_TRUE(interrupted);
  std::vector<uint64_t> order;
  for (const v1::JobSpec& s : runner_.specs()) order.push_back(s.calibration().seed());
  EXPECT_THAT(order, ElementsAre(1, 3));
}

TEST_F(JobManagerTest, ListPagesWithOpaqueTokensBoundToTheFilter) {
  StartManager({.devices = {}});  // no workers: everything stays queued
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    v1::SubmitJobRequest r = Req(i);
    (*r.mutable_spec()->mutable_labels())["parity"] = i % 2 ? "odd" : "even";
    ids.insert(ids.begin(), Submit(r).id());
  }
  v1::ListJobsRequest req;
  req.set_page_size(3);
  std::vector<std::string> got;
  int pages = 0;
  for (;;) {
    auto resp = manager_->List(req);
    ASSERT_TRUE(resp.ok()) << resp.status();
    ++pages;
    for (const v1::Job& j : resp->jobs()) got.push_back(j.id());
    if (resp->next_page_token().empty()) break;
    req.set_page_token(resp->next_page_token());
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(got, ids);
  // A token from one filter is refused for another.
  v1::ListJobsRequest first;
  first.set_page_size(2);
  std::string token = manager_->List(first)->next_page_token();
  ASSERT_FALSE(token.empty());
  v1::ListJobsRequest other;
  other.set_page_token(token);
  (*other.mutable_labels())["parity"] = "odd";
  EXPECT_EQ(manager_->List(other).status().code(), absl::StatusCode::kInvalidArgument);
  other.set_page_token("garbage!");
  EXPECT_EQ(manager_->List(other).status().code(), absl::StatusCode::kInvalidArgument);
  v1::ListJobsRequest odd;
  (*odd.mutable_labels())["parity"] = "odd";
  odd.add_states(v1::JOB_STATE_QUEUED);
  EXPECT_EQ(manager_->List(odd)->jobs_size(), 3);
  v1::ListJobsRequest done;
  done.add_states(v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(manager_->List(done)->jobs_size(), 0);
  v1::ListJobsRequest bad;
  bad.set_page_size(-1);
  EXPECT_EQ(manager_->List(bad).status().code(), absl::StatusCode::kInvalidArgument);
  v1::ServerInfo info = manager_->Info();
  EXPECT_EQ(info.queue_depth(), 7);
  EXPECT_EQ(info.version(), "0.1.0");
  EXPECT_THAT(info.datasets(), ElementsAre("wiki"));
}

TEST_F(JobManagerTest, ArtifactsStreamInChunksAndResumeFromAnOffset) {
  runner_.SetScript({.layers = 1, .gated = true});
  StartManager();
  v1::Job job = Submit(Req());
  ASSERT_TRUE(runner_.WaitForBlocked());
  v1::GetArtifactRequest req;
  req.set_job_id(job.id());
  req.set_name("model/model.safetensors");
  EXPECT_EQ(manager_->ReadArtifact(req, [](const v1::ArtifactChunk&) { return true; }).code(),
            absl::StatusCode::kFailedPrecondition);
  runner_.AllowLayers(1);
  WaitFor(job.id(), v1::JOB_STATE_SUCCEEDED);
  const std::string path = artifacts_->JobDir(job.id()) + "/model/model.safetensors";
  const std::string whole = ReadAll(path);
  ASSERT_EQ(whole.size(), 3000u);
  auto read = [&](int64_t offset, std::vector<v1::ArtifactChunk>* chunks) {
    req.set_offset(offset);
    return manager_->ReadArtifact(req, [&](const v1::ArtifactChunk& c) {
      chunks->push_back(c);
      return true;
    });
  };
  std::vector<v1::ArtifactChunk> chunks;
  ASSERT_TRUE(read(0, &chunks).ok());
  ASSERT_EQ(chunks.size(), 3u);  // 1024-byte chunks
  EXPECT_EQ(chunks[0].size_bytes(), 3000);
  EXPECT_EQ(chunks[0].sha256(), ShellSha256(path));
  EXPECT_TRUE(chunks[1].sha256().empty());
  std::string joined;
  for (const auto& c : chunks) {
    EXPECT_EQ(c.offset(), static_cast<int64_t>(joined.size()));
    joined += c.data();
  }
  EXPECT_EQ(joined, whole);
  chunks.clear();
  ASSERT_TRUE(read(2500, &chunks).ok());
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].data(), whole.substr(2500));
  EXPECT_EQ(chunks[0].sha256(), ShellSha256(path));
  chunks.clear();
  ASSERT_TRUE(read(3000, &chunks).ok());  // resume of a complete download: size only
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_TRUE(chunks[0].data().empty());
  EXPECT_EQ(read(3001, &chunks).code(), absl::StatusCode::kOutOfRange);
  req.set_name("../../jobs.db");
  EXPECT_EQ(read(0, &chunks).code(), absl::StatusCode::kNotFound);
  req.set_name("nope.bin");
  EXPECT_EQ(read(0, &chunks).code(), absl::StatusCode::kNotFound);
}

TEST_F(JobManagerTest, ProgressEventsAreThrottledWithinAStageButNotAcrossLayers) {
  runner_.SetScript({.layers = 4, .eval_ticks = 200});
  StartManager({.progress_interval = absl::Seconds(30)});
  v1::Job job = Submit(Req());
  WaitFor(job.id(), v1::JOB_STATE_SUCCEEDED);
  int layers = 0, eval = 0;
  for (const v1::JobEvent& ev : Events(job.id())) {
    if (ev.type() != v1::JobEvent::TYPE_PROGRESS) continue;
    if (ev.progress().stage() == v1::STAGE_PRUNE) ++layers;
    if (ev.progress().stage() == v1::STAGE_EVAL_PRUNED) ++eval;
  }
  EXPECT_EQ(layers, 4);
  // The first eval tick (stage change) and the one carrying the perplexity; 199 dropped.
  EXPECT_EQ(eval, 2);
}

TEST_F(JobManagerTest, RetentionDeletesOldFinishedJobsAndTheirFiles) {
  runner_.SetScript({.layers = 1});
  StartManager({.retention_max_jobs = 1});
  v1::Job a = Submit(Req(1));
  WaitFor(a.id(), v1::JOB_STATE_SUCCEEDED);
  v1::Job b = Submit(Req(2));
  WaitFor(b.id(), v1::JOB_STATE_SUCCEEDED);
  absl::SleepFor(absl::Milliseconds(100));  // let the event log of b land
  EXPECT_EQ(manager_->RunRetention(), 1);
  EXPECT_EQ(manager_->Get(a.id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(artifacts_->JobDir(a.id())));
  EXPECT_TRUE(manager_->Get(b.id()).ok());
  EXPECT_TRUE(std::filesystem::exists(artifacts_->JobDir(b.id()) + "/report.json"));
}

}  // namespace
}  // namespace prunerd
