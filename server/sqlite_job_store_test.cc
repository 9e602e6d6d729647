#include "server/sqlite_job_store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/proto_time.h"

namespace prunerd {
namespace {

using ::testing::ElementsAre;

v1::Job MakeJob(const std::string& id, const std::string& request_id = "",
                std::map<std::string, std::string> labels = {}) {
  v1::Job job;
  job.set_id(id);
  job.set_request_id(request_id);
  job.set_state(v1::JOB_STATE_QUEUED);
  job.mutable_spec()->set_model("m.bin");
  job.mutable_spec()->set_method(v1::METHOD_WANDA);
  for (const auto& [k, v] : labels) (*job.mutable_spec()->mutable_labels())[k] = v;
  return job;
}

v1::JobEvent Submitted() {
  v1::JobEvent ev;
  ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
  ev.set_message("submitted");
  return ev;
}

// Runs a shell command and returns its stdout (the sqlite3 CLI is an independent reader).
std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/jobs.db";
    Reopen();
  }
  void Reopen() {
    store_.reset();
    auto s = SqliteJobStore::Open(path_, {.read_connections = 2, .clock = &clock_});
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  // Moves a job to `state` (through RUNNING when the store would refuse the direct change).
  absl::StatusOr<UpdateResult> SetState(const std::string& id, v1::JobState state) {
    if (IsTerminal(state)) {
      absl::StatusOr<StoredJob> now = store_->Get(id);
      if (now.ok() && now->job.state() == v1::JOB_STATE_QUEUED) {
        absl::StatusOr<UpdateResult> r = SetState(id, v1::JOB_STATE_RUNNING);
        if (!r.ok()) return r.status();
      }
    }
    return store_->Update(id, [&](v1::Job& j, v1::JobEvent& ev) {
      j.set_state(state);
      if (IsTerminal(state)) SetTimestamp(j.mutable_end_time(), clock_.Now());
      ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
      return absl::OkStatus();
    });
  }

  TempDir dir_;
  FakeClock clock_;
  std::string path_;
  std::unique_ptr<SqliteJobStore> store_;
};

TEST_F(SqliteJobStoreTest, CreateThenGetRoundTrips) {
  auto r = store_->Create(MakeJob("j-1", "", {{"team", "a"}}), Submitted(), "h1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->created);
  EXPECT_GT(r->stored.seq, 0);
  EXPECT_EQ(r->stored.job.last_event_seq(), 1);
  auto got = store_->Get("j-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->job.spec().labels().at("team"), "a");
  EXPECT_EQ(got->job.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(got->seq, r->stored.seq);
  auto events = store_->Events("j-1", 1);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].seq(), 1);
  EXPECT_EQ((*events)[0].job_id(), "j-1");
  EXPECT_EQ((*events)[0].state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(FromTimestamp((*events)[0].time()), clock_.Now());
  EXPECT_TRUE(absl::IsNotFound(store_->Get("nope").status()));
}

TEST_F(SqliteJobStoreTest, RequestIdIsIdempotentAndDetectsConflicts) {
  auto a = store_->Create(MakeJob("j-a", "ci-42"), Submitted(), "hash-A");
  ASSERT_TRUE(a.ok());
  // Same request id and spec: the first job comes back, nothing new is written.
  auto again = store_->Create(MakeJob("j-b", "ci-42"), Submitted(), "hash-A");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->stored.job.id(), "j-a");
  // Same request id, different spec: refused.
  auto conflict = store_->Create(MakeJob("j-c", "ci-42"), Submitted(), "hash-B");
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::IsNotFound(store_->Get("j-b").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Get("j-c").status()));
  // Jobs without a request id never collide.
  EXPECT_TRUE(store_->Create(MakeJob("j-d"), Submitted(), "x").ok());
  EXPECT_TRUE(store_->Create(MakeJob("j-e"), Submitted(), "x").ok());
  auto page = store_->List({.page_size = 100});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 3u);
}

TEST_F(SqliteJobStoreTest, UpdateAppendsContiguousEventsAndRollsBackOnError) {
  ASSERT_TRUE(store_->Create(MakeJob("j-1"), Submitted(), "h").ok());
  ASSERT_TRUE(SetState("j-1", v1::JOB_STATE_RUNNING).ok());
  for (int i = 0; i < 3; ++i) {
    auto r = store_->Update("j-1", [&](v1::Job& j, v1::JobEvent& ev) {
      j.mutable_progress()->set_layer(i);
      ev.set_type(v1::JobEvent::TYPE_PROGRESS);
      return absl::OkStatus();
    });
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r->event.has_value());
    EXPECT_EQ(r->event->seq(), 3 + i);
  }
  // A mutator error aborts: neither the job nor the events change.
  auto failed = store_->Update("j-1", [](v1::Job& j, v1::JobEvent& ev) {
    j.set_state(v1::JOB_STATE_FAILED);
    ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
    return absl::FailedPreconditionError("nope");
  });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  auto job = store_->Get("j-1");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job->job.last_event_seq(), 5);
  EXPECT_EQ(job->job.progress().layer(), 2);
  // An update without an event type changes the job only.
  ASSERT_TRUE(store_
                  ->Update("j-1",
                           [](v1::Job& j, v1::JobEvent&) {
                             j.set_owner("x");
                             return absl::OkStatus();
                           })
                  .ok());
  auto events = store_->Events("j-1", 0);
  ASSERT_TRUE(events.ok());
  std::vector<int64_t> seqs;
  for (const auto& e : *events) seqs.push_back(e.seq());
  EXPECT_THAT(seqs, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_EQ((*events)[1].state(), v1::JOB_STATE_RUNNING);
  // Replay from the middle, with a limit.
  auto tail = store_->Events("j-1", 4, 1);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ((*tail)[0].seq(), 4);
  EXPECT_TRUE(absl::IsNotFound(
      store_->Update("zz", [](v1::Job&, v1::JobEvent&) { return absl::OkStatus(); }).status()));
}

TEST_F(SqliteJobStoreTest, ListPagesNewestFirstWithFilters) {
  // 23 jobs: every third is RUNNING, labels alternate team=a/b.
  std::vector<std::string> expected_b_queued;
  for (int i = 0; i < 23; ++i) {
    const std::string id = absl::StrCat("j-", 100 + i);
    const std::string team = i % 2 == 0 ? "a" : "b";
    ASSERT_TRUE(store_->Create(MakeJob(id, "", {{"team", team}}), Submitted(), "h").ok());
    if (i % 3 == 0) {
      ASSERT_TRUE(SetState(id, v1::JOB_STATE_RUNNING).ok());
    } else if (team == "b") {
      expected_b_queued.insert(expected_b_queued.begin(), id);  // newest first
    }
  }
  // All jobs in pages of 5: 5+5+5+5+3, newest first, no duplicates.
  std::vector<std::string> all;
  ListQuery q{.page_size = 5};
  int pages = 0;
  for (;;) {
    auto page = store_->List(q);
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    for (const auto& j : page->jobs) all.push_back(j.id());
    if (page->next_before_seq == 0) break;
    q.before_seq = page->next_before_seq;
  }
  EXPECT_EQ(pages, 5);
  ASSERT_EQ(all.size(), 23u);
  EXPECT_EQ(all.front(), "j-122");
  EXPECT_EQ(all.back(), "j-100");
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 23u);
  // Filtered by state and label.
  std::vector<std::string> filtered;
  ListQuery f{.states = {v1::JOB_STATE_QUEUED}, .labels = {{"team", "b"}}, .page_size = 2};
  for (;;) {
    auto page = store_->List(f);
    ASSERT_TRUE(page.ok());
    for (const auto& j : page->jobs) filtered.push_back(j.id());
    if (page->next_before_seq == 0) break;
    f.before_seq = page->next_before_seq;
  }
  EXPECT_EQ(filtered, expected_b_queued);
  // Exactly one page when the count equals the page size.
  auto exact = store_->List({.states = {v1::JOB_STATE_RUNNING}, .page_size = 8});
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->jobs.size(), 8u);  // i = 0,3,...,21
  EXPECT_EQ(exact->next_before_seq, 0);
  auto none = store_->List({.labels = {{"team", "c"}}});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->jobs.empty());
}

TEST_F(SqliteJobStoreTest, StateQueriesAndRetention) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(store_->Create(MakeJob(absl::StrCat("j-", i)), Submitted(), "h").ok());
  }
  // j-0..j-3 end at t, t+1h, t+2h, t+3h; j-4 runs; j-5 stays queued.
  const absl::Time t0 = clock_.Now();
  for (int i = 0; i < 4; ++i) {
    clock_.Set(t0 + absl::Hours(i));
    ASSERT_TRUE(
        SetState(absl::StrCat("j-", i), i % 2 ? v1::JOB_STATE_FAILED : v1::JOB_STATE_SUCCEEDED)
            .ok());
  }
  ASSERT_TRUE(SetState("j-4", v1::JOB_STATE_RUNNING).ok());
  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[v1::JOB_STATE_SUCCEEDED], 2);
  EXPECT_EQ((*counts)[v1::JOB_STATE_FAILED], 2);
  EXPECT_EQ((*counts)[v1::JOB_STATE_RUNNING], 1);
  EXPECT_EQ((*counts)[v1::JOB_STATE_QUEUED], 1);
  auto running = store_->JobsInState(v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0].job.id(), "j-4");

  // By age: ended before t0 + 1.5h -> j-0, j-1.
  auto old = store_->RetentionCandidates(t0 + absl::Minutes(90), -1);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(std::set<std::string>(old->begin(), old->end()), (std::set<std::string>{"j-0", "j-1"}));
  // By count: keep the newest 1 finished -> j-0, j-1, j-2; never running/queued jobs.
  auto by_count = store_->RetentionCandidates(absl::InfinitePast(), 1);
  ASSERT_TRUE(by_count.ok());
  EXPECT_EQ(std::set<std::string>(by_count->begin(), by_count->end()),
            (std::set<std::string>{"j-0", "j-1", "j-2"}));
  ASSERT_TRUE(store_->Delete("j-0").ok());
  EXPECT_TRUE(absl::IsNotFound(store_->Get("j-0").status()));
  auto ev = store_->Events("j-0", 0);
  ASSERT_TRUE(ev.ok());
  EXPECT_TRUE(ev->empty());
  EXPECT_TRUE(absl::IsNotFound(store_->Delete("j-0")));
}

TEST_F(SqliteJobStoreTest, SurvivesReopenAndUsesWalWithFullSync) {
  ASSERT_TRUE(store_->Create(MakeJob("j-1", "r1"), Submitted(), "h").ok());
  ASSERT_TRUE(SetState("j-1", v1::JOB_STATE_RUNNING).ok());
  Reopen();
  auto got = store_->Get("j-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(got->job.last_event_seq(), 2);
  // An independent reader (the sqlite3 CLI) sees WAL mode and the rows.
  if (std::system("command -v sqlite3 >/dev/null 2>&1") == 0) {
    EXPECT_EQ(Shell("sqlite3 '" + path_ + "' 'PRAGMA journal_mode;'"), "wal\n");
    EXPECT_EQ(Shell("sqlite3 '" + path_ + "' 'SELECT id, state FROM jobs;'"), "j-1|2\n");
    EXPECT_EQ(Shell("sqlite3 '" + path_ + "' 'SELECT count(*) FROM events;'"), "2\n");
  }
}

// A process that dies without closing anything (no destructors, no checkpoint) must not lose
// a committed job: the commit returned only after the WAL was fsynced.
TEST_F(SqliteJobStoreTest, CommittedWritesSurviveAProcessThatDiesAbruptly) {
  store_.reset();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto s = SqliteJobStore::Open(path_);
    if (!s.ok()) _exit(2);
    for (int i = 0; i < 20; ++i) {
      if (!(*s)->Create(MakeJob(absl::StrCat("c-", i)), Submitted(), "h").ok()) _exit(3);
    }
    (*s)->Update("c-0",
                 [](v1::Job& j, v1::JobEvent& ev) {
                   j.set_state(v1::JOB_STATE_RUNNING);
                   ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
                   return absl::OkStatus();
                 })
        .IgnoreError();
    _exit(0);  // no destructors: the store is never closed
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  Reopen();
  auto page = store_->List({.page_size = 100});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 20u);
  auto running = store_->JobsInState(v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0].job.id(), "c-0");
}

TEST_F(SqliteJobStoreTest, ConcurrentWritersAndReadersKeepSequencesContiguous) {
  ASSERT_TRUE(store_->Create(MakeJob("j-1"), Submitted(), "h").ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        ASSERT_TRUE(store_
                        ->Update("j-1",
                                 [](v1::Job&, v1::JobEvent& ev) {
                                   ev.set_type(v1::JobEvent::TYPE_PROGRESS);
                                   return absl::OkStatus();
                                 })
                        .ok());
        ASSERT_TRUE(store_->Get("j-1").ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  auto events = store_->Events("j-1", 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 101u);
  for (size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].seq(), int64_t(i + 1));
}

TEST_F(SqliteJobStoreTest, RejectsAFileThatIsNotADatabase) {
  const std::string bad = dir_.Write("garbage.db", std::string(4096, 'x'));
  auto s = SqliteJobStore::Open(bad);
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace prunerd
