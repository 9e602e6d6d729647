// service_bench: the overhead of the prunerd service itself, without the engine.
//
// Runs the real Daemon in-process (gRPC over loopback, SQLite job store with synchronous=FULL
// in a temp data dir, HTTP endpoint, scheduler) with a fake engine that takes no time, and
// measures from a gRPC client:
//
//   1. submit -> running, idle queue: SubmitJob, then WatchJob until the RUNNING event
//      (client clock), and the SubmitJob RPC alone (it returns after the fsync).
//   2. GetJob with 10,000 finished jobs in the store: sequential, and 4 concurrent clients.
//   3. 200 concurrent WatchJob streams on one job emitting ~45 events: delivery lag of every
//      event to every watcher (receive time - event time), and that all 200 saw the same
//      sequence.
//
// Prints a table and writes JSON (--json FILE). Options: --jobs N (store size, 10000),
// --watchers N (200), --submits N (100), --gets N (5000).
//
//   build/bin/service_bench --json bench_service.json
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/common/arg_parser.h"
#include "core/testing/temp_dir.h"
#include "nlohmann/json.hpp"
#include "prunerd/v1/service.grpc.pb.h"
#include "server/daemon.h"
#include "server/proto_time.h"
#include "server/sqlite_job_store.h"
#include "server/testing/fake_job_runner.h"

namespace prunerd {
namespace {

struct Stats {
  size_t n = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};

Stats Summarize(std::vector<double> v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    size_t i = static_cast<size_t>(std::ceil(p * v.size())) - 1;
    return v[std::min(i, v.size() - 1)];
  };
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  s.p50 = pct(0.50);
  s.p90 = pct(0.90);
  s.p99 = pct(0.99);
  s.max = v.back();
  return s;
}

nlohmann::json ToJson(const Stats& s) {
  return {{"n", s.n},        {"mean_ms", s.mean}, {"p50_ms", s.p50},
          {"p90_ms", s.p90}, {"p99_ms", s.p99},   {"max_ms", s.max}};
}

void PrintRow(const std::string& name, const Stats& s) {
  std::printf("%-44s %7zu %9.3f %9.3f %9.3f %9.3f %9.3f\n", name.c_str(), s.n, s.mean, s.p50, s.p90,
              s.p99, s.max);
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

v1::JobSpec Spec() {
  v1::JobSpec s;
  s.set_model("tiny.bin");
  s.set_method(v1::METHOD_WANDA);
  s.set_ratio(0.5);
  s.mutable_calibration()->set_dataset("wiki");
  s.mutable_calibration()->set_num_samples(128);
  s.mutable_calibration()->set_seqlen(2048);
  (*s.mutable_labels())["team"] = "bench";
  return s;
}

// 10,000 finished jobs, written without fsync (bulk load), like a store after months of use.
void Populate(const std::string& db, int jobs, std::vector<std::string>* ids) {
  auto store = SqliteJobStore::Open(db, {.read_connections = 1, .durable = false});
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    std::exit(1);
  }
  for (int i = 0; i < jobs; ++i) {
    v1::Job job;
    job.set_id(absl::StrFormat("j-%012x-%08x", 0x100000000LL + i, i * 2654435761u));
    job.set_request_id(absl::StrCat("ci-", i));
    *job.mutable_spec() = Spec();
    job.set_state(v1::JOB_STATE_QUEUED);
    SetTimestamp(job.mutable_create_time(), absl::Now());
    v1::JobEvent ev;
    ev.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
    auto c = (*store)->Create(job, ev, "hash");
    if (!c.ok()) std::exit(1);
    (void)(*store)->Update(job.id(), [](v1::Job& j, v1::JobEvent& e) {
      j.set_state(v1::JOB_STATE_RUNNING);  // the store allows no QUEUED -> SUCCEEDED
      return absl::OkStatus();
    });
    (void)(*store)->Update(job.id(), [](v1::Job& j, v1::JobEvent& e) {
      j.set_state(v1::JOB_STATE_SUCCEEDED);
      SetTimestamp(j.mutable_end_time(), absl::Now());
      v1::JobResult* r = j.mutable_result();
      r->set_sparsity(0.5);
      r->set_perplexity_dense(5.68);
      r->set_perplexity_pruned(7.26);
      // Reports are a few KiB: a 7B model's per-matrix sparsity (32 layers x 7 matrices).
      v1::SparsityReport* sp = r->mutable_report()->mutable_sparsity_detail();
      for (int m = 0; m < 32 * 7; ++m) {
        v1::MatrixSparsity* x = sp->add_per_matrix();
        x->set_layer(m / 7);
        x->set_proj("gate_proj");
        x->set_zeros(5636096);
        x->set_numel(11272192);
        x->set_sparsity(0.5);
      }
      for (const char* n :
           {"model/config.json", "model/model.safetensors", "report.json", "events.jsonl"}) {
        v1::Artifact* a = r->add_artifacts();
        a->set_name(n);
        a->set_size_bytes(123456);
        a->set_sha256(std::string(64, 'a'));
      }
      e.set_type(v1::JobEvent::TYPE_STATE_CHANGED);
      return absl::OkStatus();
    });
    ids->push_back(job.id());
  }
}

}  // namespace
}  // namespace prunerd

int main(int argc, char** argv) {
  using namespace prunerd;
  int64_t jobs = 10000, watchers = 200, submits = 100, gets = 5000;
  std::string json_path = "bench_service.json";
  ArgParser p("service_bench", "prunerd service overhead (fake engine, real gRPC + SQLite).");
  p.AddInt("jobs", &jobs, "finished jobs in the store for the GetJob test");
  p.AddInt("watchers", &watchers, "concurrent WatchJob streams on one job");
  p.AddInt("submits", &submits, "submit -> running samples");
  p.AddInt("gets", &gets, "GetJob calls per client");
  p.AddString("json", &json_path, "write the results here");
  if (absl::Status s = p.Parse(argc - 1, argv + 1); !s.ok() || p.help_requested()) {
    std::cerr << (s.ok() ? p.Help() : std::string(s.message()) + "\n");
    return s.ok() ? 0 : 2;
  }

  TempDir dir;
  dir.Write("models/tiny.bin", "weights");
  dir.Write("datasets/wiki.raw", "text");
  std::vector<std::string> ids;
  const absl::Time t_pop = absl::Now();
  dir.Mkdir("data");
  Populate(dir.path() + "/data/jobs.db", static_cast<int>(jobs), &ids);
  const double populate_s = absl::ToDoubleSeconds(absl::Now() - t_pop);

  ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.http_listen = "off";
  config.data_dir = dir.path() + "/data";
  config.model_roots = {dir.path() + "/models"};
  config.dataset_dir = dir.path() + "/datasets";
  config.progress_interval = absl::ZeroDuration();
  config.log_level = "warning";
  auto runner_owned = std::make_unique<FakeJobRunner>();
  FakeJobRunner* runner = runner_owned.get();
  runner->SetScript({.layers = 0});
  auto daemon = Daemon::Create(config, std::move(runner_owned));
  if (!daemon.ok() || !(*daemon)->Start().ok()) {
    std::cerr << "cannot start the daemon\n";
    return 1;
  }
  const std::string target = (*daemon)->grpc_address();
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = v1::PrunerService::NewStub(channel);

  // 1. submit -> running on an idle queue.
  std::vector<double> submit_rpc, submit_to_running, server_queue_to_start;
  for (int i = 0; i < submits; ++i) {
    v1::SubmitJobRequest req;
    *req.mutable_spec() = Spec();
    v1::SubmitJobResponse resp;
    const absl::Time t0 = absl::Now();
    grpc::ClientContext ctx;
    if (!stub->SubmitJob(&ctx, req, &resp).ok()) return 1;
    const absl::Time t1 = absl::Now();
    grpc::ClientContext wctx;
    v1::WatchJobRequest w;
    w.set_job_id(resp.job().id());
    auto reader = stub->WatchJob(&wctx, w);
    v1::JobEvent ev;
    absl::Time running = absl::InfinitePast();
    while (reader->Read(&ev)) {
      if (ev.state() == v1::JOB_STATE_RUNNING && running == absl::InfinitePast()) {
        running = absl::Now();
        server_queue_to_start.push_back(
            Ms(FromTimestamp(ev.time()) - FromTimestamp(resp.job().create_time())));
      }
    }
    reader->Finish();
    submit_rpc.push_back(Ms(t1 - t0));
    submit_to_running.push_back(Ms(running - t0));
  }

  // 2. GetJob with `jobs` finished jobs in the store.
  std::mt19937 rng(42);
  std::vector<double> get_seq;
  for (int i = 0; i < gets; ++i) {
    v1::GetJobRequest g;
    g.set_job_id(ids[rng() % ids.size()]);
    v1::Job job;
    grpc::ClientContext ctx;
    const absl::Time t0 = absl::Now();
    if (!stub->GetJob(&ctx, g, &job).ok()) return 1;
    get_seq.push_back(Ms(absl::Now() - t0));
  }
  std::vector<std::vector<double>> per_client(4);
  const absl::Time tc = absl::Now();
  {
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&, c] {
        grpc::ChannelArguments args;
        args.SetInt("prunerd.bench.client", c);  // a distinct connection per client
        auto ch = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
        auto st = v1::PrunerService::NewStub(ch);
        std::mt19937 r(c);
        for (int i = 0; i < gets; ++i) {
          v1::GetJobRequest g;
          g.set_job_id(ids[r() % ids.size()]);
          v1::Job job;
          grpc::ClientContext ctx;
          const absl::Time t0 = absl::Now();
          if (st->GetJob(&ctx, g, &job).ok()) per_client[c].push_back(Ms(absl::Now() - t0));
        }
      });
    }
    for (auto& t : clients) t.join();
  }
  const double conc_seconds = absl::ToDoubleSeconds(absl::Now() - tc);
  std::vector<double> get_conc;
  for (auto& v : per_client) get_conc.insert(get_conc.end(), v.begin(), v.end());

  // 3. Concurrent watchers on one job (40 layers of 25 ms, every boundary an event).
  runner->SetScript({.layers = 40, .gated = true, .layer_time = absl::Milliseconds(25)});
  v1::SubmitJobRequest req;
  *req.mutable_spec() = Spec();
  v1::SubmitJobResponse resp;
  {
    grpc::ClientContext ctx;
    if (!stub->SubmitJob(&ctx, req, &resp).ok()) return 1;
  }
  runner->WaitForBlocked();
  struct Received {
    std::vector<int64_t> seqs;
    std::vector<double> lag_ms;
    std::vector<absl::Time> event_time;
    bool ok = false;
  };
  std::vector<Received> received(watchers);
  std::atomic<int> subscribed{0};
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < 8; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("prunerd.bench.watch", c);
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }
  struct rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  const absl::Time w0 = absl::Now();
  std::vector<std::thread> threads;
  absl::Time last_done = absl::InfinitePast();
  std::mutex done_mu;
  for (int i = 0; i < watchers; ++i) {
    threads.emplace_back([&, i] {
      auto st = v1::PrunerService::NewStub(channels[i % channels.size()]);
      grpc::ClientContext ctx;
      v1::WatchJobRequest w;
      w.set_job_id(resp.job().id());
      auto reader = st->WatchJob(&ctx, w);
      v1::JobEvent ev;
      bool counted = false;
      while (reader->Read(&ev)) {
        const absl::Time now = absl::Now();
        if (!counted) {
          counted = true;
          subscribed.fetch_add(1);
        }
        received[i].seqs.push_back(ev.seq());
        received[i].lag_ms.push_back(Ms(now - FromTimestamp(ev.time())));
        received[i].event_time.push_back(FromTimestamp(ev.time()));
      }
      received[i].ok = reader->Finish().ok();
      std::lock_guard<std::mutex> l(done_mu);
      last_done = std::max(last_done, absl::Now());
    });
  }
  while (subscribed.load() < watchers) absl::SleepFor(absl::Milliseconds(5));
  const double subscribe_ms = Ms(absl::Now() - w0);
  absl::SleepFor(absl::Milliseconds(200));  // every stream is now waiting on live events
  const absl::Time release = absl::Now();
  runner->AllowLayers(1000);
  for (auto& t : threads) t.join();
  struct rusage ru1;
  getrusage(RUSAGE_SELF, &ru1);
  auto cpu = [](const struct rusage& r) {
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec +
           r.ru_stime.tv_usec / 1e6;
  };
  const double watch_wall = absl::ToDoubleSeconds(last_done - release);
  std::vector<double> live_lag;
  int identical = 0, ok_streams = 0;
  size_t events_per_watcher = received[0].seqs.size();
  for (const Received& r : received) {
    identical += r.seqs == received[0].seqs ? 1 : 0;
    ok_streams += r.ok ? 1 : 0;
    // Live events only: those created after the release (earlier ones were replayed from the
    // store when the stream opened).
    for (size_t k = 0; k < r.lag_ms.size(); ++k) {
      if (r.event_time[k] >= release) live_lag.push_back(r.lag_ms[k]);
    }
  }
  (*daemon)->Shutdown();
  if (std::getenv("SERVICE_BENCH_DEBUG")) {
    for (size_t k = 0; k < received[0].lag_ms.size(); ++k) {
      std::vector<double> col;
      for (const Received& r : received) {
        if (k < r.lag_ms.size()) col.push_back(r.lag_ms[k]);
      }
      Stats c = Summarize(col);
      std::printf("event %2zu: p50 %.1f p99 %.1f max %.1f\n", k, c.p50, c.p99, c.max);
    }
  }

  const Stats s_submit = Summarize(submit_rpc), s_run = Summarize(submit_to_running),
              s_server = Summarize(server_queue_to_start), s_get = Summarize(get_seq),
              s_getc = Summarize(get_conc), s_lag = Summarize(live_lag);
  std::printf(
      "prunerd service overhead (fake engine; gRPC over loopback; SQLite WAL, "
      "synchronous=FULL), %ld CPUs\n\n",
      sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("%-44s %7s %9s %9s %9s %9s %9s\n", "measurement (ms)", "n", "mean", "p50", "p90",
              "p99", "max");
  PrintRow("SubmitJob RPC (durable before return)", s_submit);
  PrintRow("submit -> RUNNING event at client, idle queue", s_run);
  PrintRow("  create_time -> RUNNING (server clock)", s_server);
  PrintRow(absl::StrCat("GetJob, ", jobs, " jobs in store, 1 client"), s_get);
  PrintRow(absl::StrCat("GetJob, ", jobs, " jobs in store, 4 clients"), s_getc);
  PrintRow(absl::StrCat("WatchJob live event lag, ", watchers, " watchers"), s_lag);
  std::printf("\nstore bulk load: %ld jobs in %.1f s; 4-client GetJob throughput %.0f calls/s\n",
              jobs, populate_s, get_conc.size() / conc_seconds);
  std::printf(
      "%ld watchers: subscribed in %.0f ms; %zu events each; %d/%ld identical "
      "sequences; %d/%ld ended OK; last stream done %.2f s after release "
      "(job itself ~%.2f s); process CPU during the watch phase %.2f s\n",
      watchers, subscribe_ms, events_per_watcher, identical, watchers, ok_streams, watchers,
      watch_wall, 40 * 0.025, cpu(ru1) - cpu(ru0));

  nlohmann::json out = {
      {"cpus", sysconf(_SC_NPROCESSORS_ONLN)},
      {"submit_rpc", ToJson(s_submit)},
      {"submit_to_running_client", ToJson(s_run)},
      {"submit_to_running_server", ToJson(s_server)},
      {"getjob_sequential", ToJson(s_get)},
      {"getjob_4_clients", ToJson(s_getc)},
      {"getjob_4_clients_calls_per_s", get_conc.size() / conc_seconds},
      {"store_jobs", jobs},
      {"store_bulk_load_s", populate_s},
      {"watchers", watchers},
      {"watch_event_lag", ToJson(s_lag)},
      {"watch_events_per_watcher", events_per_watcher},
      {"watch_identical_sequences", identical},
      {"watch_streams_ok", ok_streams},
      {"watch_subscribe_ms", subscribe_ms},
      {"watch_last_done_after_release_s", watch_wall},
      {"watch_phase_cpu_s", cpu(ru1) - cpu(ru0)},
  };
  std::ofstream(json_path) << out.dump(2) << "\n";
  std::printf("\nwrote %s\n", json_path.c_str());
  return identical == watchers && ok_streams == watchers ? 0 : 1;
}
