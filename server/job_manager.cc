#include "server/job_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/api/job_spec.h"
#include "core/api/job_state.h"
#include "core/common/status_macros.h"
#include "core/io/sha256.h"
#include "server/logging.h"
#include "server/proto_time.h"

namespace prunerd {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

bool IsTerminalEvent(const v1::JobEvent& ev) {
  return ev.type() == v1::JobEvent::TYPE_STATE_CHANGED && IsTerminal(ev.state());
}

absl::Status ValidateRequestId(const std::string& id) {
  if (id.size() > 128) {
    return absl::InvalidArgumentError("request_id: longer than 128 characters");
  }
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError("request_id: only printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

// A fingerprint of a list filter, so a page token cannot be replayed with another filter.
std::string FilterFingerprint(const v1::ListJobsRequest& r) {
  std::vector<int> states(r.states().begin(), r.states().end());
  std::sort(states.begin(), states.end());
  std::vector<std::string> labels;
  for (const auto& [k, v] : r.labels()) labels.push_back(absl::StrCat(k, "=", v));
  std::sort(labels.begin(), labels.end());
  return Sha256Hex(absl::StrCat(absl::StrJoin(states, ","), "|", absl::StrJoin(labels, "\n")))
      .substr(0, 16);
}

std::string EncodePageToken(int64_t before_seq, const std::string& fingerprint) {
  return absl::WebSafeBase64Escape(absl::StrCat("v1:", before_seq, ":", fingerprint));
}

absl::StatusOr<int64_t> DecodePageToken(const std::string& token, const std::string& fingerprint) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, ':');
  int64_t seq = 0;
  if (parts.size() != 3 || parts[0] != "v1" || !absl::SimpleAtoi(parts[1], &seq) || seq <= 0) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  if (parts[2] != fingerprint) {
    return absl::InvalidArgumentError(
        "page_token: was issued for a different filter (states/labels must not change between "
        "pages)");
  }
  return seq;
}

}  // namespace

JobManager::JobManager(Options options, Deps deps)
    : options_(std::move(options)),
      deps_(deps),
      lifecycle_(JobLifecycle::Deps{.store = deps.store,
                                    .hub = &hub_,
                                    .artifacts = deps.artifacts,
                                    .metrics = deps.metrics,
                                    .clock = deps.clock}),
      scheduler_(Scheduler::Options{.devices = options_.devices,
                                    .progress_interval = options_.progress_interval},
                 Scheduler::Deps{.lifecycle = &lifecycle_,
                                 .runner = deps.runner,
                                 .artifacts = deps.artifacts,
                                 .resolver = deps.resolver,
                                 .metrics = deps.metrics,
                                 .clock = deps.clock}) {
  start_time_ = deps_.clock->Now();
}

JobManager::~JobManager() {
  BeginDrain();
  EndStreams();
  if (!stop_retention_.HasBeenNotified()) stop_retention_.Notify();
  if (retention_thread_.joinable()) retention_thread_.join();
}

std::string JobManager::NewJobId() {
  thread_local absl::BitGen gen;
  const int64_t ms = absl::ToUnixMillis(deps_.clock->Now());
  return absl::StrFormat("j-%012x-%08x", ms & 0xffffffffffffLL, absl::Uniform<uint32_t>(gen));
}

absl::Status JobManager::Recover() {
  ASSIGN_OR_RETURN(std::vector<StoredJob> running, deps_.store->JobsInState(v1::JOB_STATE_RUNNING));
  for (const StoredJob& sj : running) {
    const std::string& id = sj.job.id();
    deps_.artifacts->DiscardTemp(id).IgnoreError();
    ASSIGN_OR_RETURN(v1::Job j, lifecycle_.RecoverCrashed(id, options_.max_crash_retries));
    LogWarning(absl::StrCat("recovery: job ", id, " was RUNNING when the daemon stopped; now ",
                            StateName(j.state())));
  }
  ASSIGN_OR_RETURN(std::vector<StoredJob> queued, deps_.store->JobsInState(v1::JOB_STATE_QUEUED));
  size_t restored = 0;
  for (const StoredJob& sj : queued) {
    if (sj.job.cancel_requested()) {
      // Acknowledged before the daemon stopped: the cancel wins.
      ASSIGN_OR_RETURN(v1::Job j,
                       lifecycle_.RecoverCrashed(sj.job.id(), options_.max_crash_retries));
      LogInfo(
          absl::StrCat("recovery: job ", j.id(), " had a cancel request; ", StateName(j.state())));
      continue;
    }
    scheduler_.Enqueue(QueuedJob{.id = sj.job.id(),
                                 .priority = sj.job.spec().priority(),
                                 .seq = sj.seq,
                                 .enqueue_time = deps_.clock->Now(),
                                 .method = sj.job.spec().method()});
    ++restored;
  }
  if (!running.empty() || restored > 0) {
    LogInfo(absl::StrCat("recovery: ", running.size(), " interrupted job(s) handled, ", restored,
                         " queued job(s) restored"));
  }
  return absl::OkStatus();
}

void JobManager::Start() {
  deps_.metrics->SetSources(ServerMetrics::Sources{
      .jobs_by_state =
          [this]() {
            absl::StatusOr<std::map<v1::JobState, int64_t>> c = deps_.store->CountByState();
            return c.ok() ? *c : std::map<v1::JobState, int64_t>{};
          },
      .gpu_memory =
          [this]() {
            std::vector<std::pair<std::string, int64_t>> out;
            std::vector<std::string> seen;
            for (const std::string& d : options_.devices) {
              if (d.rfind("cuda", 0) != 0) continue;
              if (std::find(seen.begin(), seen.end(), d) != seen.end()) continue;
              seen.push_back(d);
              out.emplace_back(d, deps_.runner->DeviceMemoryAllocated(d));
            }
            return out;
          },
      .watch_streams = [this]() { return watch_streams_.load(); },
  });
  RunRetention();
  scheduler_.Start();
  retention_thread_ = std::thread([this] { RetentionLoop(); });
}

void JobManager::RetentionLoop() {
  while (!stop_retention_.WaitForNotificationWithTimeout(options_.retention_interval)) {
    RunRetention();
  }
}

int JobManager::RunRetention() {
  if (options_.retention_max_age <= absl::ZeroDuration() && options_.retention_max_jobs < 0) {
    return 0;
  }
  const absl::Time cutoff = options_.retention_max_age > absl::ZeroDuration()
                                ? deps_.clock->Now() - options_.retention_max_age
                                : absl::InfinitePast();
  absl::StatusOr<std::vector<std::string>> ids =
      deps_.store->RetentionCandidates(cutoff, options_.retention_max_jobs);
  if (!ids.ok()) {
    LogWarning(absl::StrCat("retention: ", ids.status().ToString()));
    return 0;
  }
  int removed = 0;
  for (const std::string& id : *ids) {
    // Artifacts first: a crash in between leaves a record without files (reported as
    // NotFound by GetArtifact), never files without a record.
    absl::Status s = deps_.artifacts->Remove(id);
    if (s.ok()) s = deps_.store->Delete(id);
    if (s.ok()) {
      ++removed;
    } else {
      LogWarning(absl::StrCat("retention: job ", id, ": ", s.ToString()));
    }
  }
  // Directories whose record is gone (a crash between the two steps above, in the other order).
  for (const std::string& id : deps_.artifacts->JobIdsOnDisk()) {
    if (absl::IsNotFound(deps_.store->Get(id).status())) {
      deps_.artifacts->Remove(id).IgnoreError();
    }
  }
  if (removed > 0) LogInfo(absl::StrCat("retention: removed ", removed, " finished job(s)"));
  return removed;
}

absl::StatusOr<JobManager::SubmitResult> JobManager::Submit(const v1::SubmitJobRequest& request,
                                                            const Principal& caller) {
  if (draining_) {
    return absl::UnavailableError("the daemon is shutting down; submit again later");
  }
  RETURN_IF_ERROR(ValidateRequestId(request.request_id()));
  if (!request.has_spec()) return absl::InvalidArgumentError("spec: is required");
  RETURN_IF_ERROR(deps_.resolver->Resolve(request.spec()).status());
  const absl::Time now = deps_.clock->Now();
  v1::Job job;
  *job.mutable_spec() = request.spec();
  job.set_request_id(request.request_id());
  job.set_state(v1::JOB_STATE_QUEUED);
  SetTimestamp(job.mutable_create_time(), now);
  job.set_owner(caller.name);
  job.mutable_progress()->set_stage(v1::STAGE_QUEUED);
  if (request.validate_only()) return SubmitResult{.job = job, .created = false};

  job.set_id(NewJobId());
  ASSIGN_OR_RETURN(
      CreateResult r,
      lifecycle_.Queue(job,
                       caller.name.empty() ? std::string("submitted")
                                           : absl::StrCat("submitted by ", caller.name),
                       SpecHash(request.spec())));
  if (r.created) {
    scheduler_.Enqueue(QueuedJob{.id = r.stored.job.id(),
                                 .priority = request.spec().priority(),
                                 .seq = r.stored.seq,
                                 .enqueue_time = now,
                                 .method = request.spec().method()});
    LogInfo(absl::StrCat("job ", r.stored.job.id(), " submitted (",
                         EnumName(request.spec().method()),
                         caller.name.empty() ? "" : absl::StrCat(", by ", caller.name), ")"));
  }
  return SubmitResult{.job = std::move(r.stored.job), .created = r.created};
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id: is required");
  if (!IsValidJobId(job_id)) {
    return absl::InvalidArgumentError(absl::StrCat("job_id: malformed job id \"", job_id, "\""));
  }
  ASSIGN_OR_RETURN(StoredJob sj, deps_.store->Get(job_id));
  return std::move(sj.job);
}

absl::StatusOr<v1::ListJobsResponse> JobManager::List(const v1::ListJobsRequest& request) {
  if (request.page_size() < 0) return absl::InvalidArgumentError("page_size: must be >= 0");
  ListQuery q;
  q.page_size =
      request.page_size() == 0 ? kDefaultPageSize : std::min(request.page_size(), kMaxPageSize);
  for (int s : request.states()) {
    if (s <= v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(s)) {
      return absl::InvalidArgumentError(absl::StrCat("states: unknown state ", s));
    }
    q.states.push_back(static_cast<v1::JobState>(s));
  }
  for (const auto& [k, v] : request.labels()) {
    if (!IsValidLabelKey(k)) {
      return absl::InvalidArgumentError(absl::StrCat("labels: bad key \"", k, "\""));
    }
    q.labels[k] = v;
  }
  const std::string fingerprint = FilterFingerprint(request);
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(q.before_seq, DecodePageToken(request.page_token(), fingerprint));
  }
  ASSIGN_OR_RETURN(ListPage page, deps_.store->List(q));
  v1::ListJobsResponse resp;
  for (v1::Job& j : page.jobs) *resp.add_jobs() = std::move(j);
  if (page.next_before_seq > 0) {
    resp.set_next_page_token(EncodePageToken(page.next_before_seq, fingerprint));
  }
  return resp;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id, const Principal& caller) {
  ASSIGN_OR_RETURN(v1::Job job, Get(job_id));
  if (!caller.Has(Role::kAdmin) && job.owner() != caller.name) {
    return absl::PermissionDeniedError(absl::StrCat("job ", job_id, " belongs to \"", job.owner(),
                                                    "\"; cancelling it needs the admin role"));
  }
  if (IsTerminal(job.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " is already ", v1::JobState_Name(job.state()), "; nothing to cancel"));
  }
  const std::string who = caller.name.empty() ? "a client" : caller.name;
  if (scheduler_.TakeQueued(job_id)) {
    absl::StatusOr<v1::Job> r = lifecycle_.CancelQueued(job_id, who);
    if (!r.ok()) {
      // Not recorded: the job stays queued, as the store says.
      absl::StatusOr<StoredJob> sj = deps_.store->Get(job_id);
      if (sj.ok() && sj->job.state() == v1::JOB_STATE_QUEUED) {
        scheduler_.Enqueue(QueuedJob{.id = job.id(),
                                     .priority = job.spec().priority(),
                                     .seq = sj->seq,
                                     .enqueue_time = deps_.clock->Now(),
                                     .method = job.spec().method()});
      }
      return r.status();
    }
    LogInfo(absl::StrCat("job ", job_id, " cancelled while queued"));
    return r;
  }
  // Running (or being started) here: the request is durable before the worker is told, so a
  // crash in between still ends the job CANCELLED (recovery, or Start refusing to run it).
  ASSIGN_OR_RETURN(v1::Job r, lifecycle_.RequestCancel(job_id, who));
  scheduler_.SignalCancel(job_id);
  return r;
}

absl::Status JobManager::Watch(const std::string& job_id, int64_t from_seq,
                               const std::function<bool(const v1::JobEvent&)>& send,
                               const std::function<bool()>& client_cancelled) {
  if (from_seq < 0) return absl::InvalidArgumentError("from_seq: must be >= 0");
  ASSIGN_OR_RETURN(v1::Job job, Get(job_id));
  watch_streams_.fetch_add(1);
  struct Decrement {
    std::atomic<int64_t>* n;
    ~Decrement() { n->fetch_sub(1); }
  } decrement{&watch_streams_};

  // Subscribe before reading the store: an event committed after the read is then published
  // to this subscription, and one committed before is in the read.
  std::unique_ptr<JobEventHub::Subscription> sub = hub_.Subscribe(job_id);
  int64_t last = std::max<int64_t>(from_seq, 1) - 1;
  auto deliver = [&](const v1::JobEvent& ev, bool* done) -> absl::Status {
    if (ev.seq() <= last) return absl::OkStatus();
    if (!send(ev)) return absl::CancelledError("the client went away");
    last = ev.seq();
    if (IsTerminalEvent(ev)) *done = true;
    return absl::OkStatus();
  };
  bool done = false;
  auto replay = [&](int64_t upto) -> absl::Status {
    // Stored events after `last` (up to `upto`, 0 = all).
    ASSIGN_OR_RETURN(std::vector<v1::JobEvent> stored, deps_.store->Events(job_id, last + 1));
    for (const v1::JobEvent& ev : stored) {
      if (upto > 0 && ev.seq() > upto) break;
      RETURN_IF_ERROR(deliver(ev, &done));
      if (done) break;
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(replay(0));
  if (done) return absl::OkStatus();
  if (IsTerminal(job.state()) && last >= job.last_event_seq()) {
    // Asked to start past the terminal event of a finished job: nothing will come.
    return absl::OkStatus();
  }
  int idle_polls = 0;
  for (;;) {
    std::vector<v1::JobEvent> live;
    const JobEventHub::WaitResult w =
        sub->Wait(last, deps_.clock->Now() + options_.watch_poll, &live);
    for (const v1::JobEvent& ev : live) {
      if (ev.seq() > last + 1) RETURN_IF_ERROR(replay(ev.seq() - 1));  // fill a gap
      if (done) return absl::OkStatus();
      RETURN_IF_ERROR(deliver(ev, &done));
      if (done) return absl::OkStatus();
    }
    if (w == JobEventHub::WaitResult::kShutdown) {
      v1::JobEvent end;
      end.set_type(v1::JobEvent::TYPE_STREAM_END);
      end.set_job_id(job_id);
      SetTimestamp(end.mutable_time(), deps_.clock->Now());
      absl::StatusOr<v1::Job> now = Get(job_id);
      if (now.ok()) {
        end.set_state(now->state());
        *end.mutable_progress() = now->progress();
      }
      end.set_message(
          absl::StrCat("the daemon is shutting down; the job continues after it "
                       "restarts (watch again from seq ",
                       last + 1, ")"));
      send(end);
      return absl::UnavailableError("the daemon is shutting down");
    }
    if (client_cancelled()) return absl::CancelledError("the client cancelled the stream");
    if (w == JobEventHub::WaitResult::kTimeout && ++idle_polls % 16 == 0) {
      // Belt and braces: catch up from the store now and then (the subscribe-then-read order
      // above already covers every event; this guards against a lost publish).
      RETURN_IF_ERROR(replay(0));
      if (done) return absl::OkStatus();
    }
  }
}

absl::Status JobManager::ReadArtifact(const v1::GetArtifactRequest& request,
                                      const std::function<bool(const v1::ArtifactChunk&)>& send) {
  ASSIGN_OR_RETURN(v1::Job job, Get(request.job_id()));
  if (request.name().empty()) return absl::InvalidArgumentError("name: is required");
  if (!IsTerminal(job.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " is ", v1::JobState_Name(job.state()),
                     "; artifacts are available once it has finished"));
  }
  const v1::Artifact* artifact = nullptr;
  for (const v1::Artifact& a : job.result().artifacts()) {
    if (a.name() == request.name()) artifact = &a;
  }
  if (artifact == nullptr) {
    std::vector<std::string> names;
    for (const v1::Artifact& a : job.result().artifacts()) names.push_back(a.name());
    return absl::NotFoundError(absl::StrCat(
        "job ", job.id(), " has no artifact \"", request.name(),
        "\" (it has: ", names.empty() ? std::string("none") : absl::StrJoin(names, ", "), ")"));
  }
  if (request.offset() < 0 || request.offset() > artifact->size_bytes()) {
    return absl::OutOfRangeError(absl::StrCat("offset: ", request.offset(),
                                              " is outside the artifact (size ",
                                              artifact->size_bytes(), ")"));
  }
  ASSIGN_OR_RETURN(std::string path, deps_.artifacts->PathOf(job.id(), request.name()));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("artifact ", request.name(), " is gone"));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size != artifact->size_bytes()) {
    return absl::DataLossError(
        absl::StrCat("artifact ", request.name(), " changed on disk since it was recorded"));
  }
  int64_t offset = request.offset();
  std::string buf(options_.artifact_chunk_bytes, '\0');
  bool first = true;
  for (;;) {
    v1::ArtifactChunk chunk;
    chunk.set_offset(offset);
    if (first) {
      chunk.set_size_bytes(artifact->size_bytes());
      chunk.set_sha256(artifact->sha256());
    }
    const int64_t want = std::min<int64_t>(buf.size(), artifact->size_bytes() - offset);
    int64_t got = 0;
    while (got < want) {
      const ssize_t n = ::pread(fd, buf.data() + got, want - got, offset + got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::DataLossError(absl::StrCat("read error on ", request.name()));
      got += n;
    }
    chunk.set_data(buf.data(), got);
    if (got == 0 && !first) break;
    if (!send(chunk)) return absl::CancelledError("the client went away");
    first = false;
    offset += got;
    if (offset >= artifact->size_bytes()) break;
  }
  return absl::OkStatus();
}

v1::ServerInfo JobManager::Info() {
  v1::ServerInfo info;
  info.set_version(options_.version);
  info.set_commit(options_.commit);
  info.set_engine_version(deps_.runner->EngineVersion());
  const std::vector<DeviceInfo> all = deps_.runner->Devices();
  const auto running = scheduler_.Running();
  std::vector<std::string> seen;
  for (const std::string& d : options_.devices) {
    if (std::find(seen.begin(), seen.end(), d) != seen.end()) continue;
    seen.push_back(d);
    v1::Device* dev = info.add_devices();
    dev->set_name(d);
    for (const DeviceInfo& di : all) {
      if (di.name == d) {
        dev->set_description(di.description);
        dev->set_total_memory_bytes(di.total_memory);
        dev->set_free_memory_bytes(di.free_memory);
      }
    }
    dev->set_allocated_bytes(deps_.runner->DeviceMemoryAllocated(d));
    std::vector<std::string> jobs;
    for (const auto& [device, id] : running) {
      if (device == d) jobs.push_back(id);
    }
    dev->set_running_job_id(absl::StrJoin(jobs, ","));
  }
  info.set_queue_depth(static_cast<int64_t>(scheduler_.QueueDepth()));
  info.set_running_jobs(static_cast<int64_t>(running.size()));
  for (const std::string& n : deps_.datasets->Names()) info.add_datasets(n);
  for (v1::Method m : EnumValues<v1::Method>()) info.add_methods(m);
  SetTimestamp(info.mutable_start_time(), start_time_);
  info.set_draining(draining_);
  return info;
}

void JobManager::BeginDrain() {
  if (draining_.exchange(true)) return;
  scheduler_.BeginDrain();
  if (!stop_retention_.HasBeenNotified()) stop_retention_.Notify();
}

void JobManager::EndStreams() { hub_.Shutdown(); }

bool JobManager::WaitForWorkers(absl::Time deadline) { return scheduler_.WaitForWorkers(deadline); }

void JobManager::InterruptRunning(const std::string& why) {
  for (const auto& [device, id] : scheduler_.Running()) {
    absl::StatusOr<v1::Job> r = lifecycle_.Interrupt(id, why);
    if (r.ok()) {
      LogWarning(absl::StrCat("job ", id, " on ", device,
                              " did not reach a layer boundary in time; ",
                              "recorded as interrupted (queued again)"));
    } else if (!absl::IsFailedPrecondition(r.status())) {
      LogError(
          absl::StrCat("job ", id, ": cannot record the interruption: ", r.status().ToString()));
    }
  }
}

}  // namespace prunerd
