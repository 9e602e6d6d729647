#include "server/sqlite_job_store.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/api/job_state.h"
#include "core/common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/proto_time.h"

namespace prunerd {

namespace {

constexpr int kSchemaVersion = 1;

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  const int code = sqlite3_extended_errcode(db);
  std::string msg = absl::StrCat("job store: ", what, ": ", sqlite3_errmsg(db));
  if ((code & 0xff) == SQLITE_FULL) return absl::ResourceExhaustedError(msg);
  if ((code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT) {
    return absl::DataLossError(msg);
  }
  return absl::InternalError(msg);
}

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  absl::Status status() const {
    return rc_ == SQLITE_OK ? absl::OkStatus() : SqlError(db_, "prepare");
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

absl::Status ExecOn(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("job store: ", sql, ": ", msg));
  }
  return absl::OkStatus();
}

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  absl::Status Begin() { return ExecOn(db_, "BEGIN IMMEDIATE"); }
  absl::Status Commit() {
    absl::Status s = ExecOn(db_, "COMMIT");
    if (s.ok()) done_ = true;
    return s;
  }
  ~Transaction() {
    if (!done_) ExecOn(db_, "ROLLBACK").IgnoreError();
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

absl::StatusOr<v1::Job> ParseJob(const std::string& blob) {
  v1::Job job;
  if (!job.ParseFromString(blob)) return absl::DataLossError("job store: corrupt job record");
  return job;
}

std::string LabelsJson(const v1::Job& job) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : job.spec().labels()) j[k] = v;
  return j.dump();
}

int64_t EndTimeMicros(const v1::Job& job) {
  if (!job.has_end_time()) return 0;
  return job.end_time().seconds() * 1'000'000 + job.end_time().nanos() / 1000;
}

absl::Status StepDone(Stmt& st, sqlite3* db, absl::string_view what) {
  const int rc = st.Step();
  if (rc != SQLITE_DONE) return SqlError(db, what);
  return absl::OkStatus();
}

absl::Status InsertEvent(sqlite3* db, const v1::JobEvent& ev) {
  Stmt st(db, "INSERT INTO events(job_id, seq, event) VALUES (?, ?, ?)");
  RETURN_IF_ERROR(st.status());
  st.Bind(1, ev.job_id());
  st.Bind(2, ev.seq());
  st.BindBlob(3, ev.SerializeAsString());
  return StepDone(st, db, "insert event");
}

absl::StatusOr<sqlite3*> OpenConnection(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("job store: cannot open ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, 10000);
  sqlite3_extended_result_codes(db, 1);
  return db;
}

}  // namespace

class SqliteJobStore::Reader {
 public:
  explicit Reader(SqliteJobStore* store) : store_(store), db_(store->AcquireReader()) {}
  ~Reader() { store_->ReleaseReader(db_); }
  sqlite3* db() const { return db_; }

 private:
  SqliteJobStore* store_;
  sqlite3* db_;
};

sqlite3* SqliteJobStore::AcquireReader() {
  absl::MutexLock l(&read_mu_);
  read_mu_.Await(absl::Condition(
      +[](std::vector<sqlite3*>* v) { return !v->empty(); }, &free_readers_));
  sqlite3* db = free_readers_.back();
  free_readers_.pop_back();
  return db;
}

void SqliteJobStore::ReleaseReader(sqlite3* db) {
  absl::MutexLock l(&read_mu_);
  free_readers_.push_back(db);
}

absl::Status SqliteJobStore::Exec(sqlite3* db, const char* sql) { return ExecOn(db, sql); }

absl::StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const std::string& path,
                                                                     Options options) {
  std::unique_ptr<SqliteJobStore> store(
      new SqliteJobStore(path, options.clock ? options.clock : RealClock::Get()));
  absl::MutexLock l(&store->write_mu_);
  ASSIGN_OR_RETURN(store->writer_,
                   OpenConnection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  sqlite3* db = store->writer_;
  {
    Stmt st(db, "PRAGMA journal_mode=WAL");
    if (!st.status().ok() || st.Step() != SQLITE_ROW) {
      return absl::InvalidArgumentError(
          absl::StrCat("job store ", path, ": not a usable SQLite database: ", sqlite3_errmsg(db)));
    }
    if (st.Text(0) != "wal") {
      return absl::InternalError(absl::StrCat("job store ", path, ": WAL mode not available"));
    }
  }
  RETURN_IF_ERROR(
      store->Exec(db, options.durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF"));
  int version = 0;
  {
    Stmt st(db, "PRAGMA user_version");
    RETURN_IF_ERROR(st.status());
    if (st.Step() == SQLITE_ROW) version = static_cast<int>(st.Int(0));
  }
  if (version > kSchemaVersion) {
    return absl::InvalidArgumentError(absl::StrCat("job store ", path, ": schema version ", version,
                                                   " is newer than this daemon's ",
                                                   kSchemaVersion));
  }
  if (version == 0) {
    RETURN_IF_ERROR(store->Exec(db, R"sql(
      BEGIN;
      CREATE TABLE IF NOT EXISTS jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        request_id TEXT UNIQUE,
        spec_hash TEXT NOT NULL,
        state INTEGER NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        end_time_us INTEGER NOT NULL DEFAULT 0,
        job BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);
      CREATE TABLE IF NOT EXISTS events (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event BLOB NOT NULL,
        PRIMARY KEY (job_id, seq)) WITHOUT ROWID;
      PRAGMA user_version = 1;
      COMMIT;)sql"));
  }
  for (int i = 0; i < std::max(1, options.read_connections); ++i) {
    ASSIGN_OR_RETURN(sqlite3 * r, OpenConnection(path, SQLITE_OPEN_READONLY));
    store->all_readers_.push_back(r);
  }
  {
    absl::MutexLock rl(&store->read_mu_);
    store->free_readers_ = store->all_readers_;
  }
  return store;
}

SqliteJobStore::~SqliteJobStore() {
  for (sqlite3* r : all_readers_) sqlite3_close(r);
  absl::MutexLock l(&write_mu_);
  if (writer_ != nullptr) {
    // Fold the WAL back into the main file so a clean shutdown leaves one file.
    ExecOn(writer_, "PRAGMA wal_checkpoint(TRUNCATE)").IgnoreError();
    sqlite3_close(writer_);
  }
}

absl::StatusOr<CreateResult> SqliteJobStore::Create(const v1::Job& job_in,
                                                    const v1::JobEvent& first_event,
                                                    const std::string& spec_hash) {
  absl::MutexLock l(&write_mu_);
  sqlite3* db = writer_;
  Transaction txn(db);
  RETURN_IF_ERROR(txn.Begin());
  if (!job_in.request_id().empty()) {
    Stmt st(db, "SELECT seq, spec_hash, job FROM jobs WHERE request_id = ?");
    RETURN_IF_ERROR(st.status());
    st.Bind(1, job_in.request_id());
    const int rc = st.Step();
    if (rc == SQLITE_ROW) {
      if (st.Text(1) != spec_hash) {
        return absl::AlreadyExistsError(absl::StrCat("request_id \"", job_in.request_id(),
                                                     "\" was already used for a different spec"));
      }
      CreateResult r;
      r.stored.seq = st.Int(0);
      ASSIGN_OR_RETURN(r.stored.job, ParseJob(st.Blob(2)));
      r.created = false;
      return r;
    }
    if (rc != SQLITE_DONE) return SqlError(db, "lookup request_id");
  }
  v1::Job job = job_in;
  v1::JobEvent ev = first_event;
  ev.set_seq(1);
  ev.set_job_id(job.id());
  ev.set_state(job.state());
  if (!ev.has_time()) SetTimestamp(ev.mutable_time(), clock_->Now());
  job.set_last_event_seq(1);
  {
    Stmt st(db,
            "INSERT INTO jobs(id, request_id, spec_hash, state, labels, end_time_us, job) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)");
    RETURN_IF_ERROR(st.status());
    st.Bind(1, job.id());
    if (job.request_id().empty()) {
      st.BindNull(2);
    } else {
      st.Bind(2, job.request_id());
    }
    st.Bind(3, spec_hash);
    st.Bind(4, static_cast<int64_t>(job.state()));
    st.Bind(5, LabelsJson(job));
    st.Bind(6, EndTimeMicros(job));
    st.BindBlob(7, job.SerializeAsString());
    if (st.Step() != SQLITE_DONE) {
      if ((sqlite3_extended_errcode(db) & 0xff) == SQLITE_CONSTRAINT) {
        return absl::AlreadyExistsError(absl::StrCat("job id ", job.id(), " already exists"));
      }
      return SqlError(db, "insert job");
    }
  }
  const int64_t seq = sqlite3_last_insert_rowid(db);
  RETURN_IF_ERROR(InsertEvent(db, ev));
  RETURN_IF_ERROR(txn.Commit());
  CreateResult r;
  r.stored.job = std::move(job);
  r.stored.seq = seq;
  r.created = true;
  return r;
}

absl::StatusOr<StoredJob> SqliteJobStore::Get(const std::string& id) {
  Reader reader(this);
  sqlite3* db = reader.db();
  Stmt st(db, "SELECT seq, job FROM jobs WHERE id = ?");
  RETURN_IF_ERROR(st.status());
  st.Bind(1, id);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  if (rc != SQLITE_ROW) return SqlError(db, "get job");
  StoredJob out;
  out.seq = st.Int(0);
  ASSIGN_OR_RETURN(out.job, ParseJob(st.Blob(1)));
  return out;
}

absl::StatusOr<UpdateResult> SqliteJobStore::Update(const std::string& id,
                                                    const JobMutator& mutate) {
  absl::MutexLock l(&write_mu_);
  sqlite3* db = writer_;
  Transaction txn(db);
  RETURN_IF_ERROR(txn.Begin());
  v1::Job job;
  {
    Stmt st(db, "SELECT job FROM jobs WHERE id = ?");
    RETURN_IF_ERROR(st.status());
    st.Bind(1, id);
    const int rc = st.Step();
    if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
    if (rc != SQLITE_ROW) return SqlError(db, "read job");
    ASSIGN_OR_RETURN(job, ParseJob(st.Blob(0)));
  }
  const v1::JobState before = job.state();
  const std::string before_id = job.id();
  v1::JobEvent ev;
  RETURN_IF_ERROR(mutate(job, ev));
  // The backstop of the lifecycle (core/api/job_state.h): no mutator may make a forbidden
  // change of state, or change what identifies the job.
  if (!IsAllowedTransition(before, job.state())) {
    return absl::FailedPreconditionError(absl::StrCat("job ", id, ": transition ",
                                                      StateName(before), " -> ",
                                                      StateName(job.state()), " is not allowed"));
  }
  if (job.id() != before_id) {
    return absl::InvalidArgumentError(absl::StrCat("job ", id, ": an update cannot change its id"));
  }
  UpdateResult result;
  if (ev.type() != v1::JobEvent::TYPE_UNSPECIFIED) {
    ev.set_seq(job.last_event_seq() + 1);
    ev.set_job_id(id);
    ev.set_state(job.state());
    if (!ev.has_time()) SetTimestamp(ev.mutable_time(), clock_->Now());
    job.set_last_event_seq(ev.seq());
    RETURN_IF_ERROR(InsertEvent(db, ev));
    result.event = ev;
  }
  {
    Stmt st(db, "UPDATE jobs SET state = ?, end_time_us = ?, job = ? WHERE id = ?");
    RETURN_IF_ERROR(st.status());
    st.Bind(1, static_cast<int64_t>(job.state()));
    st.Bind(2, EndTimeMicros(job));
    st.BindBlob(3, job.SerializeAsString());
    st.Bind(4, id);
    RETURN_IF_ERROR(StepDone(st, db, "update job"));
  }
  RETURN_IF_ERROR(txn.Commit());
  result.job = std::move(job);
  return result;
}

absl::StatusOr<ListPage> SqliteJobStore::List(const ListQuery& q) {
  std::string sql = "SELECT seq, job FROM jobs WHERE 1";
  if (!q.states.empty()) {
    std::vector<std::string> ss;
    for (v1::JobState s : q.states) ss.push_back(absl::StrCat(static_cast<int>(s)));
    absl::StrAppend(&sql, " AND state IN (", absl::StrJoin(ss, ","), ")");
  }
  for (size_t i = 0; i < q.labels.size(); ++i) {
    absl::StrAppend(&sql, " AND json_extract(labels, ?) IS ?");
  }
  if (q.before_seq > 0) absl::StrAppend(&sql, " AND seq < ?");
  absl::StrAppend(&sql, " ORDER BY seq DESC LIMIT ?");

  Reader reader(this);
  sqlite3* db = reader.db();
  Stmt st(db, sql);
  RETURN_IF_ERROR(st.status());
  int i = 1;
  for (const auto& [k, v] : q.labels) {
    st.Bind(i++, absl::StrCat("$.\"", k, "\""));
    st.Bind(i++, v);
  }
  if (q.before_seq > 0) st.Bind(i++, q.before_seq);
  const int page_size = std::max(1, q.page_size);
  st.Bind(i++, static_cast<int64_t>(page_size) + 1);
  ListPage page;
  int64_t last_seq = 0;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    if (static_cast<int>(page.jobs.size()) == page_size) {
      page.next_before_seq = last_seq;  // there is at least one more
      break;
    }
    last_seq = st.Int(0);
    ASSIGN_OR_RETURN(v1::Job job, ParseJob(st.Blob(1)));
    page.jobs.push_back(std::move(job));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlError(db, "list jobs");
  return page;
}

absl::StatusOr<std::vector<v1::JobEvent>> SqliteJobStore::Events(const std::string& id,
                                                                 int64_t from_seq, int64_t limit) {
  Reader reader(this);
  sqlite3* db = reader.db();
  Stmt st(db, "SELECT event FROM events WHERE job_id = ? AND seq >= ? ORDER BY seq LIMIT ?");
  RETURN_IF_ERROR(st.status());
  st.Bind(1, id);
  st.Bind(2, from_seq);
  st.Bind(3, limit > 0 ? limit : int64_t{-1});
  std::vector<v1::JobEvent> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    v1::JobEvent ev;
    if (!ev.ParseFromString(st.Blob(0))) {
      return absl::DataLossError(absl::StrCat("job store: corrupt event of job ", id));
    }
    out.push_back(std::move(ev));
  }
  if (rc != SQLITE_DONE) return SqlError(db, "list events");
  return out;
}

absl::StatusOr<std::vector<StoredJob>> SqliteJobStore::JobsInState(v1::JobState state) {
  Reader reader(this);
  sqlite3* db = reader.db();
  Stmt st(db, "SELECT seq, job FROM jobs WHERE state = ? ORDER BY seq");
  RETURN_IF_ERROR(st.status());
  st.Bind(1, static_cast<int64_t>(state));
  std::vector<StoredJob> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    StoredJob sj;
    sj.seq = st.Int(0);
    ASSIGN_OR_RETURN(sj.job, ParseJob(st.Blob(1)));
    out.push_back(std::move(sj));
  }
  if (rc != SQLITE_DONE) return SqlError(db, "jobs in state");
  return out;
}

absl::StatusOr<std::map<v1::JobState, int64_t>> SqliteJobStore::CountByState() {
  Reader reader(this);
  sqlite3* db = reader.db();
  Stmt st(db, "SELECT state, COUNT(*) FROM jobs GROUP BY state");
  RETURN_IF_ERROR(st.status());
  std::map<v1::JobState, int64_t> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    out[static_cast<v1::JobState>(st.Int(0))] = st.Int(1);
  }
  if (rc != SQLITE_DONE) return SqlError(db, "count jobs");
  return out;
}

absl::StatusOr<std::vector<std::string>> SqliteJobStore::RetentionCandidates(
    absl::Time ended_before, int64_t keep_newest) {
  Reader reader(this);
  sqlite3* db = reader.db();
  const std::string terminal = absl::StrCat("state IN (", static_cast<int>(v1::JOB_STATE_SUCCEEDED),
                                            ",", static_cast<int>(v1::JOB_STATE_FAILED), ",",
                                            static_cast<int>(v1::JOB_STATE_CANCELLED), ")");
  std::string sql = absl::StrCat("SELECT id FROM jobs WHERE ", terminal, " AND end_time_us < ?");
  if (keep_newest >= 0) {
    absl::StrAppend(&sql, " UNION SELECT id FROM (SELECT id FROM jobs WHERE ", terminal,
                    " ORDER BY end_time_us DESC, seq DESC LIMIT -1 OFFSET ?)");
  }
  Stmt st(db, sql);
  RETURN_IF_ERROR(st.status());
  st.Bind(1, absl::ToUnixMicros(ended_before));
  if (keep_newest >= 0) st.Bind(2, keep_newest);
  std::vector<std::string> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) out.push_back(st.Text(0));
  if (rc != SQLITE_DONE) return SqlError(db, "retention candidates");
  return out;
}

absl::Status SqliteJobStore::Delete(const std::string& id) {
  absl::MutexLock l(&write_mu_);
  sqlite3* db = writer_;
  Transaction txn(db);
  RETURN_IF_ERROR(txn.Begin());
  {
    Stmt st(db, "DELETE FROM jobs WHERE id = ?");
    RETURN_IF_ERROR(st.status());
    st.Bind(1, id);
    RETURN_IF_ERROR(StepDone(st, db, "delete job"));
    if (sqlite3_changes(db) == 0)
      return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  }
  {
    Stmt st(db, "DELETE FROM events WHERE job_id = ?");
    RETURN_IF_ERROR(st.status());
    st.Bind(1, id);
    RETURN_IF_ERROR(StepDone(st, db, "delete events"));
  }
  return txn.Commit();
}

}  // namespace prunerd
