#include <memory>
#include <string>
#include <vector>

#include "core/api/job_state.h"
#include "core/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_lifecycle.h"
#include "server/sqlite_job_store.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

class JobLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteJobStore::Open(dir_.path() + "/jobs.db");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    artifacts_ = std::make_unique<ArtifactStore>(dir_.path() + "/data", FileSystem::Default());
    metrics_ = std::make_unique<ServerMetrics>("0.1.0", "test");
    life_ = std::make_unique<JobLifecycle>(JobLifecycle::Deps{.store = store_.get(),
                                                              .hub = &hub_,
                                                              .artifacts = artifacts_.get(),
                                                              .metrics = metrics_.get(),
                                                              .clock = RealClock::Get()});
  }

  std::string NewJob(const std::string& id) {
    v1::Job job;
    job.set_id(id);
    job.mutable_spec()->set_model("m");
    job.mutable_spec()->set_method(v1::METHOD_WANDA);
    absl::StatusOr<CreateResult> r = life_->Queue(job, "submitted", "hash-" + id);
    EXPECT_TRUE(r.ok()) << r.status();
    return id;
  }
  // A job brought to `state` through allowed transitions only.
  std::string JobIn(const std::string& id, v1::JobState state) {
    NewJob(id);
    if (state == v1::JOB_STATE_QUEUED) return id;
    if (state == v1::JOB_STATE_CANCELLED) {
      EXPECT_TRUE(life_->CancelQueued(id, "test").ok());
      return id;
    }
    EXPECT_TRUE(life_->Start(id, "cpu").ok());
    if (state == v1::JOB_STATE_SUCCEEDED) {
      EXPECT_TRUE(life_->Succeed(id, v1::JobResult()).ok());
    }
    if (state == v1::JOB_STATE_FAILED) {
      EXPECT_TRUE(life_->Fail(id, absl::InternalError("boom"), "engine_error").ok());
    }
    return id;
  }
  v1::Job Load(const std::string& id) { return store_->Get(id)->job; }

  TempDir dir_;
  std::unique_ptr<SqliteJobStore> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<ServerMetrics> metrics_;
  JobEventHub hub_;
  std::unique_ptr<JobLifecycle> life_;
};

TEST(JobStateTest, TransitionTable) {
  using S = v1::JobState;
  const std::vector<S> all = {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
                              v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED};
  // The allowed changes, written out by hand from job.proto's diagram.
  const std::vector<std::pair<S, S>> allowed = {
      {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING},
      {v1::JOB_STATE_QUEUED, v1::JOB_STATE_CANCELLED},
      {v1::JOB_STATE_QUEUED, v1::JOB_STATE_FAILED},
      {v1::JOB_STATE_RUNNING, v1::JOB_STATE_QUEUED},
      {v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED},
      {v1::JOB_STATE_RUNNING, v1::JOB_STATE_FAILED},
      {v1::JOB_STATE_RUNNING, v1::JOB_STATE_CANCELLED},
  };
  for (S from : all) {
    for (S to : all) {
      const bool expected = from == to || std::find(allowed.begin(), allowed.end(),
                                                    std::make_pair(from, to)) != allowed.end();
      EXPECT_EQ(IsAllowedTransition(from, to), expected)
          << StateName(from) << " -> " << StateName(to);
    }
  }
  EXPECT_FALSE(IsAllowedTransition(v1::JOB_STATE_UNSPECIFIED, v1::JOB_STATE_UNSPECIFIED));
  EXPECT_EQ(StateName(v1::JOB_STATE_SUCCEEDED), "succeeded");
}

// Each forbidden transition, asked of the lifecycle, is refused and changes nothing.
TEST_F(JobLifecycleTest, SucceededCannotRunAgain) {
  const std::string id = JobIn("j-done", v1::JOB_STATE_SUCCEEDED);
  const int64_t seq = Load(id).last_event_seq();
  absl::StatusOr<v1::Job> r = life_->Start(id, "cpu");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("is succeeded; cannot start"));
  EXPECT_EQ(Load(id).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Load(id).last_event_seq(), seq);
}

TEST_F(JobLifecycleTest, CancelledCannotBeQueuedAgain) {
  const std::string id = JobIn("j-cancelled", v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(life_->Interrupt(id, "x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(life_->RecoverCrashed(id, 3).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(life_->Start(id, "cpu").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Load(id).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(JobLifecycleTest, TerminalStatesRefuseEveryChange) {
  for (v1::JobState state :
       {v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    const std::string id = JobIn(absl::StrCat("j-", StateName(state)), state);
    const v1::Job before = Load(id);
    EXPECT_FALSE(life_->Start(id, "cpu").ok());
    EXPECT_FALSE(life_->Progress(id, v1::JobProgress()).ok());
    EXPECT_FALSE(life_->RequestCancel(id, "x").ok());
    EXPECT_FALSE(life_->CancelQueued(id, "x").ok());
    EXPECT_FALSE(life_->FailQueued(id, absl::InternalError("x"), "internal").ok());
    EXPECT_FALSE(life_->FinishCancel(id).ok());
    EXPECT_FALSE(life_->Succeed(id, v1::JobResult()).ok());
    EXPECT_FALSE(life_->Fail(id, absl::InternalError("x"), "internal").ok());
    EXPECT_FALSE(life_->Interrupt(id, "x").ok());
    EXPECT_FALSE(life_->RecoverCrashed(id, 1).ok());
    const v1::Job after = Load(id);
    EXPECT_EQ(after.state(), state);
    EXPECT_EQ(after.last_event_seq(), before.last_event_seq());
  }
}

TEST_F(JobLifecycleTest, QueuedCannotSucceedFailOrEndCancelledAsIfRunning) {
  const std::string id = JobIn("j-q", v1::JOB_STATE_QUEUED);
  EXPECT_EQ(life_->Succeed(id, v1::JobResult()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(life_->Fail(id, absl::InternalError("x"), "internal").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(life_->FinishCancel(id).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(life_->Progress(id, v1::JobProgress()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(life_->Interrupt(id, "x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Load(id).state(), v1::JOB_STATE_QUEUED);
}

TEST_F(JobLifecycleTest, RunningCannotStartTwiceOrBeCancelledAsQueued) {
  const std::string id = JobIn("j-r", v1::JOB_STATE_RUNNING);
  EXPECT_EQ(life_->Start(id, "cuda:1").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(life_->CancelQueued(id, "x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(life_->FailQueued(id, absl::InternalError("x"), "internal").status().code(),
            absl::StatusCode::kFailedPrecondition);
  const v1::Job j = Load(id);
  EXPECT_EQ(j.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(j.attempt(), 1);
  EXPECT_EQ(j.device(), "cpu");
}

// The store is the backstop: a mutator that tries a forbidden change is refused there too.
TEST_F(JobLifecycleTest, StoreRefusesForbiddenTransitions) {
  const std::string id = JobIn("j-s", v1::JOB_STATE_SUCCEEDED);
  absl::StatusOr<UpdateResult> r = store_->Update(id, [](v1::Job& j, v1::JobEvent&) {
    j.set_state(v1::JOB_STATE_RUNNING);
    return absl::OkStatus();
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("succeeded -> running"));
  EXPECT_EQ(Load(id).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(JobLifecycleTest, CancelRequestIsDurableBeforeTheRun) {
  // Requested while queued (a worker took it but had not started it): Start refuses to run it.
  const std::string id = JobIn("j-c", v1::JOB_STATE_QUEUED);
  ASSERT_TRUE(life_->RequestCancel(id, "alice").ok());
  EXPECT_TRUE(Load(id).cancel_requested());
  absl::StatusOr<v1::Job> started = life_->Start(id, "cpu");
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(started->attempt(), 0);
  EXPECT_EQ(started->error().reason(), "cancelled");
}

TEST_F(JobLifecycleTest, RecoveryHonoursAnAcknowledgedCancel) {
  const std::string id = JobIn("j-rc", v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(life_->RequestCancel(id, "alice").ok());
  // The daemon dies here; the next start recovers the job.
  absl::StatusOr<v1::Job> r = life_->RecoverCrashed(id, /*max_crash_retries=*/5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(r->crash_recoveries(), 0);
}

TEST_F(JobLifecycleTest, RecoveryCountsCrashesThenFails) {
  const std::string id = JobIn("j-crash", v1::JOB_STATE_RUNNING);
  absl::StatusOr<v1::Job> r = life_->RecoverCrashed(id, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(r->crash_recoveries(), 1);
  ASSERT_TRUE(life_->Start(id, "cpu").ok());
  r = life_->RecoverCrashed(id, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(r->error().reason(), "daemon_restart");
}

TEST_F(JobLifecycleTest, GracefulInterruptIsNotACrash) {
  const std::string id = JobIn("j-int", v1::JOB_STATE_RUNNING);
  absl::StatusOr<v1::Job> r = life_->Interrupt(id, "shutdown");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(r->crash_recoveries(), 0);
  EXPECT_EQ(r->progress().stage(), v1::STAGE_QUEUED);
  // The worker's late writes for the interrupted attempt are refused.
  EXPECT_FALSE(life_->Progress(id, v1::JobProgress()).ok());
  EXPECT_FALSE(life_->Succeed(id, v1::JobResult()).ok());
}

// Every terminal job gets its event log, whichever transition ended it.
TEST_F(JobLifecycleTest, EveryTerminalTransitionWritesTheEventLog) {
  std::vector<std::string> ids = {JobIn("j-e1", v1::JOB_STATE_SUCCEEDED),
                                  JobIn("j-e2", v1::JOB_STATE_FAILED),
                                  JobIn("j-e3", v1::JOB_STATE_CANCELLED)};
  const std::string crashed = JobIn("j-e4", v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(life_->RecoverCrashed(crashed, 0).ok());  // -> FAILED daemon_restart
  ids.push_back(crashed);
  for (const std::string& id : ids) {
    const v1::Job j = Load(id);
    ASSERT_TRUE(IsTerminal(j.state())) << id;
    bool listed = false;
    for (const v1::Artifact& a : j.result().artifacts()) listed |= a.name() == kEventsArtifact;
    EXPECT_TRUE(listed) << id;
    absl::StatusOr<std::string> path = artifacts_->PathOf(id, kEventsArtifact);
    ASSERT_TRUE(path.ok()) << path.status();
    std::ifstream in(*path);
    int lines = 0;
    for (std::string line; std::getline(in, line);) {
      ++lines;
      EXPECT_THAT(line, HasSubstr("\"job_id\":\"" + id + "\""));
    }
    EXPECT_EQ(lines, j.last_event_seq()) << id;
  }
}

}  // namespace
}  // namespace prunerd
