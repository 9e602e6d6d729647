#include "client/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <system_error>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client_options.h"
#include "client/exit_codes.h"
#include "client/job_format.h"
#include "client/quality_gate.h"
#include "core/api/job_spec.h"
#include "core/api/spec_flags.h"
#include "core/io/sha256.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace prunerd {
namespace {

constexpr char kUsage[] =
    "usage: prunectl <command> [options]   (prunectl <command> --help for its options)\n"
    "\n"
    "commands:\n"
    "  submit    submit a prune job (--wait to follow it to the end)\n"
    "  get       show one job\n"
    "  list      list jobs (filter by state and labels, paged)\n"
    "  watch     stream a job's events until it ends\n"
    "  wait      wait for a job to end, check quality gates, optionally download\n"
    "  cancel    cancel a job\n"
    "  download  download a finished job's artifacts (resumable, sha256-verified)\n"
    "  info      daemon version, devices, queue depth\n"
    "  health    the daemon's gRPC health status\n"
    "\n"
    "exit codes: 0 ok, 1 job failed, 2 job cancelled, 3 unreachable, 4 invalid request,\n"
    "            5 auth refused, 6 quality gate failed, 7 integrity, 8 other error, 9 timeout\n";

int Fail(int code, const std::string& message) {
  std::cerr << "prunectl: " << message << "\n";
  return code;
}

int RpcFail(const grpc::Status& s, const std::string& what) {
  std::string code_name;
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      code_name = "INVALID_ARGUMENT";
      break;
    case grpc::StatusCode::NOT_FOUND:
      code_name = "NOT_FOUND";
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      code_name = "ALREADY_EXISTS";
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code_name = "FAILED_PRECONDITION";
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      code_name = "UNAUTHENTICATED";
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      code_name = "PERMISSION_DENIED";
      break;
    case grpc::StatusCode::UNAVAILABLE:
      code_name = "UNAVAILABLE";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code_name = "DEADLINE_EXCEEDED";
      break;
    case grpc::StatusCode::OUT_OF_RANGE:
      code_name = "OUT_OF_RANGE";
      break;
    case grpc::StatusCode::DATA_LOSS:
      code_name = "DATA_LOSS";
      break;
    case grpc::StatusCode::INTERNAL:
      code_name = "INTERNAL";
      break;
    default:
      code_name = absl::StrCat("code ", static_cast<int>(s.error_code()));
      break;
  }
  return Fail(ExitCodeForStatus(s), absl::StrCat(what, ": ", code_name, ": ", s.error_message()));
}

// Parses the command line of a subcommand: common options plus the command's own. Returns
// -1 to go on, or the exit code to return (help printed, or a usage error).
int ParseArgs(ArgParser& p, ClientOptions* options, const std::vector<std::string>& args,
              size_t positional) {
  AddClientOptions(p, options);
  absl::Status s = p.Parse(args);
  if (!s.ok()) return Fail(kExitInvalid, std::string(s.message()));
  if (p.help_requested()) {
    std::cout << p.Help();
    return kExitOk;
  }
  if (p.positional().size() != positional) {
    return Fail(kExitInvalid, positional == 1 ? "expected exactly one job id (see --help)"
                                              : "unexpected arguments (see --help)");
  }
  return -1;
}

// Unary call with retries while the daemon is unreachable (restarting, not up yet).
template <typename Call>
grpc::Status CallWithRetry(const Connection& conn, double retry_seconds, Call call) {
  const absl::Time deadline = absl::Now() + absl::Seconds(retry_seconds);
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    grpc::ClientContext ctx;
    conn.Prepare(&ctx, /*unary=*/true);
    grpc::Status s = call(&ctx);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() + backoff > deadline) {
      return s;
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

// Progress of a followed job: a bar rewritten in place on a terminal, one line per event
// otherwise, JSON lines with --output json.
class EventDisplay {
 public:
  EventDisplay(FILE* out, bool json, bool quiet)
      : out_(out), json_(json), quiet_(quiet), tty_(isatty(fileno(out)) == 1) {}
  ~EventDisplay() { Finish(); }

  void Show(const v1::JobEvent& ev) {
    if (quiet_) return;
    if (json_) {
      std::fprintf(out_, "%s\n", ToJson(ev).c_str());
    } else if (tty_) {
      const bool state_change = ev.type() != v1::JobEvent::TYPE_PROGRESS;
      if (state_change || ev.progress().has_perplexity_dense() != ppl_dense_ ||
          ev.progress().has_perplexity_pruned() != ppl_pruned_) {
        // Keep state changes and new perplexities in the scrollback.
        std::fprintf(out_, "\r\033[K%s\n", EventLine(ev).c_str());
        ppl_dense_ = ev.progress().has_perplexity_dense();
        ppl_pruned_ = ev.progress().has_perplexity_pruned();
      }
      std::fprintf(out_, "\r\033[K%s", ProgressBarLine(ev.state(), ev.progress(), 30).c_str());
      bar_ = true;
    } else {
      std::fprintf(out_, "%s\n", EventLine(ev).c_str());
    }
    std::fflush(out_);
  }
  void Finish() {
    if (bar_) std::fprintf(out_, "\n");
    bar_ = false;
    std::fflush(out_);
  }

 private:
  FILE* out_;
  bool json_;
  bool quiet_;
  bool tty_;
  bool bar_ = false;
  bool ppl_dense_ = false;
  bool ppl_pruned_ = false;
};

struct FollowResult {
  int code = kExitOk;  // kExitOk when the job reached a terminal state
  v1::Job job;
};

// Follows a job to its terminal event, reconnecting (from the next sequence number) while the
// daemon restarts, for up to `reconnect_seconds` without contact.
FollowResult Follow(const Connection& conn, const std::string& id, int64_t from_seq,
                    EventDisplay& display, double timeout_seconds, double reconnect_seconds) {
  FollowResult r;
  const absl::Time deadline =
      timeout_seconds > 0 ? absl::Now() + absl::Seconds(timeout_seconds) : absl::InfiniteFuture();
  int64_t next = from_seq;
  absl::Time last_contact = absl::Now();
  absl::Duration backoff = absl::Milliseconds(200);
  bool terminal = false;
  while (!terminal) {
    grpc::ClientContext ctx;
    conn.Prepare(&ctx, /*unary=*/false);
    if (deadline != absl::InfiniteFuture()) ctx.set_deadline(absl::ToChronoTime(deadline));
    v1::WatchJobRequest req;
    req.set_job_id(id);
    req.set_from_seq(next);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = conn.stub->WatchJob(&ctx, req);
    v1::JobEvent ev;
    while (reader->Read(&ev)) {
      last_contact = absl::Now();
      backoff = absl::Milliseconds(200);
      display.Show(ev);
      if (ev.type() == v1::JobEvent::TYPE_STREAM_END) continue;
      next = ev.seq() + 1;
      if (ev.type() == v1::JobEvent::TYPE_STATE_CHANGED && IsTerminal(ev.state())) {
        terminal = true;
      }
    }
    grpc::Status s = reader->Finish();
    if (terminal) break;
    if (absl::Now() >= deadline) {
      display.Finish();
      r.code = Fail(kExitTimeout,
                    absl::StrCat("job ", id, " did not finish within ", timeout_seconds, " s"));
      return r;
    }
    if (s.ok()) continue;
    // UNAVAILABLE: the daemon is restarting or draining; CANCELLED: it dropped the stream
    // while shutting down. Either way, watch again from the next event.
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::CANCELLED) {
      if (absl::Now() - last_contact > absl::Seconds(reconnect_seconds)) {
        display.Finish();
        r.code = RpcFail(s, "watch (gave up reconnecting)");
        return r;
      }
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(3));
      continue;
    }
    display.Finish();
    r.code = RpcFail(s, "watch");
    return r;
  }
  display.Finish();
  v1::GetJobRequest get;
  get.set_job_id(id);
  // The event log artifact is hashed right after the terminal event; give it a moment so
  // the final record lists it.
  for (int attempt = 0; attempt < 20; ++attempt) {
    grpc::Status s = CallWithRetry(conn, reconnect_seconds, [&](grpc::ClientContext* ctx) {
      return conn.stub->GetJob(ctx, get, &r.job);
    });
    if (!s.ok()) {
      r.code = RpcFail(s, "get job");
      return r;
    }
    for (const v1::Artifact& a : r.job.result().artifacts()) {
      if (a.name() == "events.jsonl") return r;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return r;
}

bool ArtifactSelected(const std::string& name, const std::vector<std::string>& wanted) {
  if (wanted.empty()) return true;
  for (const std::string& w : wanted) {
    if (name == w || absl::StartsWith(name, w + "/")) return true;
  }
  return false;
}

int64_t FileSizeOr(const std::string& path, int64_t fallback) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : fallback;
}

// Downloads (or resumes) the selected artifacts of a finished job into `dir`, each verified
// against its sha256 before it gets its final name.
int DownloadArtifacts(const Connection& conn, const v1::Job& job, const std::string& dir,
                      const std::vector<std::string>& wanted, bool quiet, bool json) {
  int selected = 0;
  for (const v1::Artifact& a : job.result().artifacts()) {
    if (!ArtifactSelected(a.name(), wanted)) continue;
    ++selected;
    for (absl::string_view part : absl::StrSplit(a.name(), '/')) {
      if (part.empty() || part == "." || part == "..") {
        return Fail(kExitIntegrity, absl::StrCat("refusing artifact name \"", a.name(), "\""));
      }
    }
    const std::string dest = absl::StrCat(dir, "/", a.name());
    const std::string part = dest + ".part";
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(dest).parent_path(), ec);
    if (ec) return Fail(kExitError, absl::StrCat("cannot create ", dir, ": ", ec.message()));
    if (FileSizeOr(dest, -1) == a.size_bytes()) {
      absl::StatusOr<std::string> have = Sha256File(dest);
      if (have.ok() && *have == a.sha256()) {
        if (!quiet && !json) std::cerr << "up to date  " << a.name() << "\n";
        continue;
      }
    }
    int64_t offset = FileSizeOr(part, 0);
    if (offset > a.size_bytes()) {
      std::filesystem::remove(part, ec);
      offset = 0;
    }
    {
      std::ofstream out(part, std::ios::binary | std::ios::app);
      if (!out) return Fail(kExitError, absl::StrCat("cannot write ", part));
      grpc::ClientContext ctx;
      conn.Prepare(&ctx, /*unary=*/false);
      v1::GetArtifactRequest req;
      req.set_job_id(job.id());
      req.set_name(a.name());
      req.set_offset(offset);
      auto reader = conn.stub->GetArtifact(&ctx, req);
      v1::ArtifactChunk chunk;
      bool first = true;
      int64_t at = offset;
      while (reader->Read(&chunk)) {
        if (first && (chunk.sha256() != a.sha256() || chunk.size_bytes() != a.size_bytes())) {
          ctx.TryCancel();
          reader->Finish();
          return Fail(kExitIntegrity, absl::StrCat(a.name(),
                                                   ": the daemon now reports a different file than "
                                                   "the job record"));
        }
        first = false;
        if (chunk.offset() != at) {
          ctx.TryCancel();
          reader->Finish();
          return Fail(kExitIntegrity, absl::StrCat(a.name(), ": chunk at offset ", chunk.offset(),
                                                   ", expected ", at));
        }
        out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
        at += static_cast<int64_t>(chunk.data().size());
      }
      grpc::Status s = reader->Finish();
      out.close();
      if (!s.ok()) return RpcFail(s, absl::StrCat("download ", a.name()));
      if (!out) return Fail(kExitError, absl::StrCat("write error on ", part));
    }
    absl::StatusOr<std::string> got = Sha256File(part);
    if (!got.ok()) return Fail(kExitError, std::string(got.status().message()));
    if (*got != a.sha256()) {
      std::filesystem::remove(part, ec);
      return Fail(kExitIntegrity, absl::StrCat(a.name(), ": sha256 mismatch (got ", *got,
                                               ", expected ", a.sha256(), "); removed"));
    }
    std::filesystem::rename(part, dest, ec);
    if (ec) return Fail(kExitError, absl::StrCat("rename ", part, ": ", ec.message()));
    if (!quiet && !json) {
      std::cerr << (offset > 0 ? "resumed     " : "downloaded  ") << a.name() << "  ("
                << HumanBytes(a.size_bytes()) << ", sha256 ok)\n";
    }
  }
  if (selected == 0) {
    return Fail(kExitInvalid,
                wanted.empty() ? absl::StrCat("job ", job.id(), " has no artifacts")
                               : absl::StrCat("no artifact matches ", absl::StrJoin(wanted, ", ")));
  }
  return kExitOk;
}

// What happens after a job reached its end in submit --wait / wait: print it, check the
// gates, download. Returns the exit code.
int Conclude(const Connection& conn, const ClientOptions& o, const v1::Job& job,
             const QualityGates& gates, const std::string& download_dir,
             const std::vector<std::string>& artifacts, bool quiet) {
  if (o.json()) {
    std::cout << ToJson(job) << "\n";
  } else {
    std::cout << JobSummary(job);
  }
  int code = ExitCodeForJobState(job.state());
  if (code != kExitOk) return code;
  if (gates.any()) {
    GateReport rep = CheckQualityGates(gates, job.result());
    for (const std::string& line : rep.lines) std::cerr << "gate    " << line << "\n";
    if (!rep.passed) return Fail(kExitGateFailed, "quality gate failed");
  }
  if (!download_dir.empty()) {
    return DownloadArtifacts(conn, job, download_dir, artifacts, quiet, o.json());
  }
  return kExitOk;
}

std::string NewRequestId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  return absl::StrCat("prunectl-", absl::Hex(gen(), absl::kZeroPad16));
}

absl::Status ParseLabels(const std::vector<std::string>& in,
                         google::protobuf::Map<std::string, std::string>* out) {
  for (const std::string& kv : in) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--label: expected key=value, got ", kv));
    }
    (*out)[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return absl::OkStatus();
}

// Options shared by submit --wait and wait.
struct WaitOptions {
  double wait_timeout = 0;
  double reconnect = 120;
  std::string max_ppl_increase;
  std::string max_ppl;
  std::string min_sparsity;
  std::string download_dir;
  std::vector<std::string> artifacts;
  bool quiet = false;
  void Register(ArgParser& p) {
    p.AddDouble("wait-timeout", &wait_timeout,
                "give up waiting after this many seconds (0 = never)");
    p.AddDouble("reconnect-timeout", &reconnect,
                "keep reconnecting this long while the daemon is unreachable (seconds)");
    p.AddString("max-ppl-increase", &max_ppl_increase,
                "gate: allowed perplexity increase, \"10%\" (relative) or \"2.5\" (points)");
    p.AddString("max-ppl", &max_ppl, "gate: maximum pruned perplexity");
    p.AddString("min-sparsity", &min_sparsity, "gate: minimum achieved sparsity");
    p.AddString("download", &download_dir, "after success, download the artifacts here");
    p.AddRepeated("artifact", &artifacts,
                  "with --download: only these (\"model\", \"report.json\")");
    p.AddBool("quiet", &quiet, "no progress output");
  }
};

}  // namespace

int SubmitCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  WaitOptions w;
  std::string request_id;
  bool validate_only = false, wait = false;
  double retry_seconds = 10;
  ArgParser p("prunectl submit", "Submit a prune job to the daemon.");
  SpecFlags spec_flags(p);
  p.AddString("request-id", &request_id,
              "idempotency key (default: random per invocation; use e.g. the CI job id)");
  p.AddBool("validate-only", &validate_only, "check the spec without creating a job");
  p.AddBool("wait", &wait, "follow the job to its end (exit code = its outcome)");
  p.AddDouble("retry-for", &retry_seconds,
              "retry the submit this long while the daemon is unreachable (seconds)");
  w.Register(p);
  if (int rc = ParseArgs(p, &o, args, 0); rc >= 0) return rc;

  v1::SubmitJobRequest req;
  req.set_request_id(request_id.empty() ? NewRequestId() : request_id);
  req.set_validate_only(validate_only);
  if (absl::Status st = spec_flags.ApplyTo(req.mutable_spec()); !st.ok()) {
    return Fail(kExitInvalid, std::string(st.message()));
  }
  absl::StatusOr<QualityGates> gates =
      ParseQualityGates(w.max_ppl_increase, w.max_ppl, w.min_sparsity);
  if (!gates.ok()) return Fail(kExitInvalid, std::string(gates.status().message()));

  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  v1::SubmitJobResponse resp;
  // Retrying with the same request_id is safe: the daemon returns the job it already made.
  grpc::Status st = CallWithRetry(*conn, retry_seconds, [&](grpc::ClientContext* ctx) {
    return conn->stub->SubmitJob(ctx, req, &resp);
  });
  if (!st.ok()) return RpcFail(st, "submit");
  if (validate_only) {
    if (o.json()) {
      std::cout << ToJson(resp) << "\n";
    } else {
      std::cout << "spec is valid\n";
    }
    return kExitOk;
  }
  if (!wait) {
    if (o.json()) {
      std::cout << ToJson(resp) << "\n";
    } else {
      std::cout << resp.job().id() << "\n";
      if (!resp.created()) {
        std::cerr << "prunectl: request_id " << req.request_id()
                  << " matched an existing job; not submitted again\n";
      }
    }
    return kExitOk;
  }
  if (!w.quiet && !o.json()) {
    std::cerr << (resp.created() ? "submitted " : "existing job ") << resp.job().id() << "\n";
  }
  EventDisplay display(stderr, /*json=*/false, w.quiet);
  FollowResult fr = Follow(*conn, resp.job().id(), 1, display, w.wait_timeout, w.reconnect);
  if (fr.code != kExitOk) return fr.code;
  return Conclude(*conn, o, fr.job, *gates, w.download_dir, w.artifacts, w.quiet);
}

int WaitCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  WaitOptions w;
  ArgParser p("prunectl wait JOB", "Wait for a job to end; check quality gates; download.");
  w.Register(p);
  if (int rc = ParseArgs(p, &o, args, 1); rc >= 0) return rc;
  absl::StatusOr<QualityGates> gates =
      ParseQualityGates(w.max_ppl_increase, w.max_ppl, w.min_sparsity);
  if (!gates.ok()) return Fail(kExitInvalid, std::string(gates.status().message()));
  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  EventDisplay display(stderr, false, w.quiet);
  FollowResult fr = Follow(*conn, p.positional()[0], 1, display, w.wait_timeout, w.reconnect);
  if (fr.code != kExitOk) return fr.code;
  return Conclude(*conn, o, fr.job, *gates, w.download_dir, w.artifacts, w.quiet);
}

int WatchCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  int64_t from_seq = 0;
  double reconnect = 120;
  ArgParser p("prunectl watch JOB",
              "Print a job's events (replayed from --from-seq, then live) until it ends.");
  p.AddInt("from-seq", &from_seq, "replay from this event sequence number (0 = all)");
  p.AddDouble("reconnect-timeout", &reconnect, "keep reconnecting this long (seconds)");
  if (int rc = ParseArgs(p, &o, args, 1); rc >= 0) return rc;
  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  EventDisplay display(stdout, o.json(), false);
  FollowResult fr = Follow(*conn, p.positional()[0], from_seq, display, 0, reconnect);
  if (fr.code != kExitOk) return fr.code;
  return ExitCodeForJobState(fr.job.state());
}

int GetCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  ArgParser p("prunectl get JOB", "Show one job.");
  if (int rc = ParseArgs(p, &o, args, 1); rc >= 0) return rc;
  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  v1::GetJobRequest req;
  req.set_job_id(p.positional()[0]);
  v1::Job job;
  grpc::ClientContext ctx;
  conn->Prepare(&ctx, true);
  grpc::Status s = conn->stub->GetJob(&ctx, req, &job);
  if (!s.ok()) return RpcFail(s, "get");
  std::cout << (o.json() ? ToJson(job) + "\n" : JobSummary(job));
  return kExitOk;
}

int ListCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  std::vector<std::string> states, labels;
  int64_t page_size = 0;
  std::string page_token;
  bool all = false;
  ArgParser p("prunectl list", "List jobs, newest first.");
  p.AddRepeated("state", &states, "only jobs in this state (queued, running, succeeded, ...)");
  p.AddRepeated("label", &labels, "only jobs with this key=value label");
  p.AddInt("page-size", &page_size, "jobs per page (0 = 50)");
  p.AddString("page-token", &page_token, "continue from a previous page");
  p.AddBool("all", &all, "follow the pages to the end");
  if (int rc = ParseArgs(p, &o, args, 0); rc >= 0) return rc;
  v1::ListJobsRequest req;
  for (const std::string& s : states) {
    absl::StatusOr<v1::JobState> st = ParseEnum<v1::JobState>(s, "--state");
    if (!st.ok()) return Fail(kExitInvalid, std::string(st.status().message()));
    req.add_states(*st);
  }
  if (absl::Status st = ParseLabels(labels, req.mutable_labels()); !st.ok()) {
    return Fail(kExitInvalid, std::string(st.message()));
  }
  req.set_page_size(static_cast<int32_t>(page_size));
  req.set_page_token(page_token);
  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  v1::ListJobsResponse merged;
  for (;;) {
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    conn->Prepare(&ctx, true);
    grpc::Status s = conn->stub->ListJobs(&ctx, req, &resp);
    if (!s.ok()) return RpcFail(s, "list");
    for (const v1::Job& j : resp.jobs()) *merged.add_jobs() = j;
    merged.set_next_page_token(resp.next_page_token());
    if (!all || resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  if (o.json()) {
    std::cout << ToJson(merged) << "\n";
  } else {
    for (const v1::Job& j : merged.jobs()) std::cout << JobListLine(j) << "\n";
    if (!merged.next_page_token().empty()) {
      std::cerr << "more: --page-token " << merged.next_page_token() << "\n";
    }
  }
  return kExitOk;
}

int CancelCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  bool wait = false;
  ArgParser p("prunectl cancel JOB",
              "Cancel a job: a queued job at once, a running one at its next layer boundary.");
  p.AddBool("wait", &wait, "wait until the job has stopped (exit 0 when it ended CANCELLED)");
  if (int rc = ParseArgs(p, &o, args, 1); rc >= 0) return rc;
  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  v1::CancelJobRequest req;
  req.set_job_id(p.positional()[0]);
  v1::Job job;
  grpc::ClientContext ctx;
  conn->Prepare(&ctx, true);
  grpc::Status s = conn->stub->CancelJob(&ctx, req, &job);
  if (!s.ok()) return RpcFail(s, "cancel");
  if (wait && !IsTerminal(job.state())) {
    EventDisplay display(stderr, false, true);
    FollowResult fr = Follow(*conn, job.id(), job.last_event_seq() + 1, display, 0, 120);
    if (fr.code != kExitOk) return fr.code;
    job = fr.job;
  }
  if (o.json()) {
    std::cout << ToJson(job) << "\n";
  } else {
    std::cout << job.id() << " " << StateName(job.state())
              << (job.cancel_requested() && !IsTerminal(job.state())
                      ? " (stops at the next layer boundary)"
                      : "")
              << "\n";
  }
  if (wait) {
    return job.state() == v1::JOB_STATE_CANCELLED ? kExitOk : ExitCodeForJobState(job.state());
  }
  return kExitOk;
}

int DownloadCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  std::string dir;
  std::vector<std::string> artifacts;
  bool quiet = false;
  ArgParser p("prunectl download JOB",
              "Download a finished job's artifacts; resumes partial files (*.part) and checks "
              "every file's sha256.");
  p.AddString("dir", &dir, "destination directory (default: ./<job id>)");
  p.AddRepeated("artifact", &artifacts, "only this artifact or directory (model, report.json)");
  p.AddBool("quiet", &quiet, "no progress output");
  if (int rc = ParseArgs(p, &o, args, 1); rc >= 0) return rc;
  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  v1::GetJobRequest req;
  req.set_job_id(p.positional()[0]);
  v1::Job job;
  grpc::ClientContext ctx;
  conn->Prepare(&ctx, true);
  grpc::Status s = conn->stub->GetJob(&ctx, req, &job);
  if (!s.ok()) return RpcFail(s, "get");
  if (!IsTerminal(job.state())) {
    return Fail(kExitInvalid, absl::StrCat("job ", job.id(), " is ", StateName(job.state()),
                                           "; artifacts exist once it has finished"));
  }
  if (dir.empty()) dir = job.id();
  int rc = DownloadArtifacts(*conn, job, dir, artifacts, quiet, o.json());
  if (rc == kExitOk && o.json()) std::cout << ToJson(job.result()) << "\n";
  return rc;
}

int InfoCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  ArgParser p("prunectl info", "Daemon version, devices and queue.");
  if (int rc = ParseArgs(p, &o, args, 0); rc >= 0) return rc;
  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  v1::ServerInfo info;
  grpc::ClientContext ctx;
  conn->Prepare(&ctx, true);
  grpc::Status s = conn->stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
  if (!s.ok()) return RpcFail(s, "info");
  if (o.json()) {
    std::cout << ToJson(info) << "\n";
    return kExitOk;
  }
  std::cout << "prunerd    " << info.version() << " (" << info.commit() << "), "
            << info.engine_version() << (info.draining() ? "  DRAINING" : "") << "\n";
  std::cout << "queue      " << info.queue_depth() << " queued, " << info.running_jobs()
            << " running\n";
  for (const v1::Device& d : info.devices()) {
    std::cout << "device     " << d.name() << "  " << d.description();
    if (d.total_memory_bytes() > 0) {
      std::cout << "  " << HumanBytes(d.allocated_bytes()) << " allocated / "
                << HumanBytes(d.total_memory_bytes());
    }
    if (!d.running_job_id().empty()) std::cout << "  running " << d.running_job_id();
    std::cout << "\n";
  }
  std::vector<std::string> methods;
  for (int m : info.methods()) methods.push_back(EnumName(static_cast<v1::Method>(m)));
  std::cout << "methods    " << absl::StrJoin(methods, ", ") << "\n";
  std::cout << "datasets   "
            << (info.datasets().empty() ? "-" : absl::StrJoin(info.datasets(), ", ")) << "\n";
  return kExitOk;
}

int HealthCommand(const std::vector<std::string>& args) {
  ClientOptions o;
  std::string service;
  ArgParser p("prunectl health",
              "grpc.health.v1 Check: exit 0 when SERVING, 3 otherwise (also when unreachable).");
  p.AddString("service", &service, "service name (default: the whole server)");
  if (int rc = ParseArgs(p, &o, args, 0); rc >= 0) return rc;
  absl::StatusOr<Connection> conn = Connect(o);
  if (!conn.ok()) return Fail(kExitInvalid, std::string(conn.status().message()));
  auto stub = grpc::health::v1::Health::NewStub(conn->channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  conn->Prepare(&ctx, true);
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return RpcFail(s, "health");
  const std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
  std::cout << (o.json() ? ToJson(resp) : name) << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                         : kExitUnreachable;
}

int RunPrunectl(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? kExitInvalid : kExitOk;
  }
  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "submit") return SubmitCommand(rest);
  if (command == "get") return GetCommand(rest);
  if (command == "list") return ListCommand(rest);
  if (command == "watch") return WatchCommand(rest);
  if (command == "wait") return WaitCommand(rest);
  if (command == "cancel") return CancelCommand(rest);
  if (command == "download") return DownloadCommand(rest);
  if (command == "info") return InfoCommand(rest);
  if (command == "health") return HealthCommand(rest);
  std::cerr << "prunectl: unknown command \"" << command << "\"\n" << kUsage;
  return kExitInvalid;
}

}  // namespace prunerd
