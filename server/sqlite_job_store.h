// File: sqlite_job_store.h
//
// JobStore on SQLite, the default for a single daemon. One file (<data_dir>/jobs.db) in WAL
// mode; every Create/Update/Delete is one IMMEDIATE transaction on the writer connection;
// reads go through a small pool of read-only connections, so GetJob/ListJobs/WatchJob replay
// never wait behind a writer's fsync (WAL readers see the last committed snapshot).
//
// Durability: PRAGMA synchronous=FULL. In WAL mode, FULL fsyncs the WAL at every commit, so a
// job is on disk when SubmitJob returns and every state transition survives power loss.
// NORMAL would only sync at checkpoints: a commit acknowledged to a client could vanish on
// power loss, which the API promises never happens. The cost is one fsync per transaction
// (about 1-5 ms here); progress events are throttled by the scheduler so a job writes a few
// hundred transactions at most. Schema (user_version 1):
//
//   jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, request_id TEXT UNIQUE,
//        spec_hash TEXT, state INTEGER, labels TEXT (JSON), end_time_us INTEGER, job BLOB)
//   events(job_id TEXT, seq INTEGER, event BLOB, PRIMARY KEY(job_id, seq)) WITHOUT ROWID
//
// `job` is the serialized prunerd.v1.Job (authoritative); the other columns are indexes.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<SqliteJobStore> store,
//                    SqliteJobStore::Open("/var/lib/prunerd/jobs.db"));
//
// Thread-safety: safe for concurrent use; writes are serialized by an internal mutex.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/clock.h"
#include "server/job_store.h"

struct sqlite3;

namespace prunerd {

class SqliteJobStore : public JobStore {
 public:
  struct Options {
    int read_connections = 4;
    Clock* clock = nullptr;  // nullptr = RealClock
    // false = PRAGMA synchronous=OFF: no fsync at all. Only for bulk-loading a store that is
    // then closed and reopened normally (the service benchmark's 10,000 jobs); never in the
    // daemon.
    bool durable = true;
  };
  // Creates the file and schema when absent. InvalidArgument for a file that is not a prunerd
  // store, Internal for I/O errors.
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path,
                                                              Options options);
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path) {
    return Open(path, Options{});
  }
  ~SqliteJobStore() override;

  absl::StatusOr<CreateResult> Create(const v1::Job& job, const v1::JobEvent& first_event,
                                      const std::string& spec_hash) override;
  absl::StatusOr<StoredJob> Get(const std::string& id) override;
  absl::StatusOr<UpdateResult> Update(const std::string& id, const JobMutator& mutate) override;
  absl::StatusOr<ListPage> List(const ListQuery& query) override;
  absl::StatusOr<std::vector<v1::JobEvent>> Events(const std::string& id, int64_t from_seq,
                                                   int64_t limit = 0) override;
  absl::StatusOr<std::vector<StoredJob>> JobsInState(v1::JobState state) override;
  absl::StatusOr<std::map<v1::JobState, int64_t>> CountByState() override;
  absl::StatusOr<std::vector<std::string>> RetentionCandidates(absl::Time ended_before,
                                                               int64_t keep_newest) override;
  absl::Status Delete(const std::string& id) override;

  const std::string& path() const { return path_; }

 private:
  SqliteJobStore(std::string path, Clock* clock) : path_(std::move(path)), clock_(clock) {}

  // Borrows a read connection for the scope of the object.
  class Reader;
  sqlite3* AcquireReader();
  void ReleaseReader(sqlite3* db);

  absl::Status Exec(sqlite3* db, const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  const std::string path_;
  Clock* const clock_;

  absl::Mutex write_mu_;
  sqlite3* writer_ ABSL_GUARDED_BY(write_mu_) = nullptr;

  absl::Mutex read_mu_;
  std::vector<sqlite3*> free_readers_ ABSL_GUARDED_BY(read_mu_);
  std::vector<sqlite3*> all_readers_;  // set in Open, closed in the destructor
};

}  // namespace prunerd
