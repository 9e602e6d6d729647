// RPC tests on an in-process daemon (the real Daemon, gRPC server, HTTP endpoint, SQLite
// store) with a fake engine: bad inputs, the job lifecycle over gRPC, tokens, TLS and mTLS
// (certificates made with the openssl CLI), health, reflection, /metrics and the drain.
#include "server/daemon.h"

#include <httplib.h>
#include <sys/stat.h>

#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "prunerd/v1/service.grpc.pb.h"
#include "server/job_manager.h"
#include "server/testing/fake_job_runner.h"
#include "server/testing/prometheus_text.h"
#include "server/testing/test_certs.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

constexpr char kTokens[] =
    "reader-token-0123456789 read grafana\n"
    "submit-token-0123456789 submit ci\n"
    "admin-token-01234567890 admin alice\n";

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("models/tiny.bin", "weights");
    dir_.Write("models/hf/config.json", "{}");
    dir_.Mkdir("models/empty-dir");
    dir_.Write("outside/secret.bin", "s");
    dir_.Write("datasets/wiki.raw", "text");
    config_.listen = "127.0.0.1:0";
    config_.http_listen = "127.0.0.1:0";
    config_.data_dir = dir_.path() + "/data";
    config_.model_roots = {dir_.path() + "/models"};
    config_.dataset_dir = dir_.path() + "/datasets";
    config_.progress_interval = absl::ZeroDuration();
    config_.shutdown_grace = absl::Seconds(10);
  }
  void TearDown() override { daemon_.reset(); }

  void StartDaemon() {
    auto runner = std::make_unique<FakeJobRunner>();
    runner_ = runner.get();
    auto d = Daemon::Create(config_, std::move(runner));
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
    ASSERT_TRUE(daemon_->Start().ok());
    ASSERT_TRUE(daemon_->ready());
  }

  std::shared_ptr<grpc::Channel> Insecure() {
    return grpc::CreateChannel(daemon_->grpc_address(), grpc::InsecureChannelCredentials());
  }
  std::shared_ptr<grpc::Channel> Tls(const std::string& ca, const std::string& cert = "",
                                     const std::string& key = "") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = Read(ca);
    if (!cert.empty()) {
      o.pem_cert_chain = Read(cert);
      o.pem_private_key = Read(key);
    }
    return grpc::CreateChannel(daemon_->grpc_address(), grpc::SslCredentials(o));
  }
  static std::string Read(const std::string& path) {
    return *FileSystem::Default()->ReadFile(path);
  }

  static void Prepare(grpc::ClientContext* ctx, const std::string& token = "") {
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  static v1::SubmitJobRequest Req(const std::string& request_id = "") {
    v1::SubmitJobRequest r;
    r.set_request_id(request_id);
    v1::JobSpec* s = r.mutable_spec();
    s->set_model("tiny.bin");
    s->set_method(v1::METHOD_WANDA);
    s->set_ratio(0.5);
    s->mutable_calibration()->set_dataset("wiki");
    s->mutable_calibration()->set_num_samples(2);
    s->mutable_calibration()->set_seqlen(16);
    return r;
  }

  grpc::Status Submit(std::shared_ptr<grpc::Channel> ch, const v1::SubmitJobRequest& r,
                      v1::SubmitJobResponse* resp, const std::string& token = "") {
    auto stub = v1::PrunerService::NewStub(ch);
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    return stub->SubmitJob(&ctx, r, resp);
  }

  grpc::Status GetInfo(std::shared_ptr<grpc::Channel> ch, const std::string& token = "") {
    auto stub = v1::PrunerService::NewStub(ch);
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    v1::ServerInfo info;
    return stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
  }

  v1::Job WaitFor(const std::string& id, v1::JobState state) {
    auto stub = v1::PrunerService::NewStub(Insecure());
    v1::Job job;
    for (int i = 0; i < 4000; ++i) {
      grpc::ClientContext ctx;
      Prepare(&ctx);
      v1::GetJobRequest r;
      r.set_job_id(id);
      if (stub->GetJob(&ctx, r, &job).ok() && job.state() == state) return job;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << id << " never reached " << v1::JobState_Name(state);
    return job;
  }

  TempDir dir_;
  ServerConfig config_;
  FakeJobRunner* runner_ = nullptr;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonTest, EveryBadInputClassGetsItsCodeAndTheDaemonKeepsServing) {
  StartDaemon();
  struct Case {
    std::string what;
    std::function<void(v1::SubmitJobRequest&)> edit;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"unknown method", [](auto& r) { r.mutable_spec()->set_method(static_cast<v1::Method>(77)); },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.method: unknown method 77"},
      {"no method", [](auto& r) { r.mutable_spec()->clear_method(); },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.method: is required"},
      {"ratio 1.0", [](auto& r) { r.mutable_spec()->set_ratio(1.0); },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.ratio: must be in [0, 1)"},
      {"ratio -0.5", [](auto& r) { r.mutable_spec()->set_ratio(-0.5); },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.ratio: must be in [0, 1)"},
      {"N:M without M", [](auto& r) { r.mutable_spec()->mutable_pattern()->set_n(2); },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.pattern: N:M pattern 2:0 needs 0 < N < M"},
      {"N >= M",
       [](auto& r) {
         r.mutable_spec()->mutable_pattern()->set_n(4);
         r.mutable_spec()->mutable_pattern()->set_m(4);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.pattern"},
      {"outside the roots",
       [this](auto& r) { r.mutable_spec()->set_model(dir_.path() + "/outside/secret.bin"); },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.model: path is outside the configured"},
      {"dot-dot", [](auto& r) { r.mutable_spec()->set_model("../outside/secret.bin"); },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.model: \"..\" is not allowed"},
      {"missing model", [](auto& r) { r.mutable_spec()->set_model("nope.bin"); },
       grpc::StatusCode::NOT_FOUND, "spec.model: no such file inside the model roots"},
      {"not a model dir", [](auto& r) { r.mutable_spec()->set_model("empty-dir"); },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.model: directory without config.json"},
      {"unknown dataset",
       [](auto& r) { r.mutable_spec()->mutable_calibration()->set_dataset("c4"); },
       grpc::StatusCode::NOT_FOUND, "spec.calibration.dataset: unknown dataset"},
      {"no spec", [](auto& r) { r.clear_spec(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec: is required"},
      {"bad request id", [](auto& r) { r.set_request_id(std::string(200, 'x')); },
       grpc::StatusCode::INVALID_ARGUMENT, "request_id"},
  };
  auto ch = Insecure();
  for (const Case& c : cases) {
    v1::SubmitJobRequest r = Req();
    c.edit(r);
    v1::SubmitJobResponse resp;
    grpc::Status s = Submit(ch, r, &resp);
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.message)) << c.what;
  }
  auto stub = v1::PrunerService::NewStub(ch);
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::GetJobRequest g;
    g.set_job_id("j-000000000000-00000000");
    v1::Job j;
    EXPECT_EQ(stub->GetJob(&ctx, g, &j).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::GetJobRequest g;
    g.set_job_id("../../etc");
    v1::Job j;
    EXPECT_EQ(stub->GetJob(&ctx, g, &j).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // Still serving, and nothing was queued.
  EXPECT_TRUE(GetInfo(ch).ok());
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ListJobsResponse list;
  ASSERT_TRUE(stub->ListJobs(&ctx, v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 0);
}

TEST_F(DaemonTest, LifecycleOverGrpc) {
  StartDaemon();
  runner_->SetScript({.layers = 3});
  auto ch = Insecure();
  auto stub = v1::PrunerService::NewStub(ch);
  v1::SubmitJobResponse first, again;
  ASSERT_TRUE(Submit(ch, Req("build-17"), &first).ok());
  ASSERT_TRUE(Submit(ch, Req("build-17"), &again).ok());
  EXPECT_TRUE(first.created());
  EXPECT_FALSE(again.created());
  EXPECT_EQ(first.job().id(), again.job().id());
  const std::string id = first.job().id();

  // Two watchers over gRPC see the same events, ending with the terminal one.
  auto watch = [&](int64_t from, std::vector<v1::JobEvent>* out) {
    grpc::ClientContext ctx;
    v1::WatchJobRequest w;
    w.set_job_id(id);
    w.set_from_seq(from);
    auto reader = stub->WatchJob(&ctx, w);
    v1::JobEvent ev;
    while (reader->Read(&ev)) out->push_back(ev);
    return reader->Finish();
  };
  std::vector<v1::JobEvent> a, b;
  grpc::Status sa, sb;
  std::thread ta([&] { sa = watch(0, &a); });
  std::thread tb([&] { sb = watch(0, &b); });
  ta.join();
  tb.join();
  ASSERT_TRUE(sa.ok()) << sa.error_message();
  ASSERT_TRUE(sb.ok());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].SerializeAsString(), b[i].SerializeAsString());
  EXPECT_EQ(a.back().state(), v1::JOB_STATE_SUCCEEDED);
  std::vector<v1::JobEvent> tail;
  ASSERT_TRUE(watch(3, &tail).ok());
  ASSERT_EQ(tail.size(), a.size() - 2);
  EXPECT_EQ(tail[0].seq(), 3);

  // Artifact by chunks, resumed from an offset.
  v1::Job job = WaitFor(id, v1::JOB_STATE_SUCCEEDED);
  auto read = [&](const std::string& name, int64_t offset, std::string* data) {
    grpc::ClientContext ctx;
    v1::GetArtifactRequest r;
    r.set_job_id(id);
    r.set_name(name);
    r.set_offset(offset);
    auto reader = stub->GetArtifact(&ctx, r);
    v1::ArtifactChunk c;
    while (reader->Read(&c)) *data += c.data();
    return reader->Finish();
  };
  std::string whole, tail_bytes;
  ASSERT_TRUE(read("model/model.safetensors", 0, &whole).ok());
  ASSERT_TRUE(read("model/model.safetensors", 1000, &tail_bytes).ok());
  EXPECT_EQ(whole.size(), 3000u);
  EXPECT_EQ(tail_bytes, whole.substr(1000));
  std::string none;
  EXPECT_EQ(read("missing", 0, &none).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(read("model/model.safetensors", 5000, &none).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);

  // Cancel: a finished job is FAILED_PRECONDITION; a queued one ends CANCELLED.
  grpc::ClientContext c1;
  Prepare(&c1);
  v1::CancelJobRequest cr;
  cr.set_job_id(id);
  v1::Job out;
  EXPECT_EQ(stub->CancelJob(&c1, cr, &out).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  runner_->SetScript({.layers = 2, .gated = true});
  v1::SubmitJobResponse running, queued;
  ASSERT_TRUE(Submit(ch, Req(), &running).ok());
  ASSERT_TRUE(runner_->WaitForBlocked());
  ASSERT_TRUE(Submit(ch, Req(), &queued).ok());
  grpc::ClientContext c2;
  Prepare(&c2);
  cr.set_job_id(queued.job().id());
  ASSERT_TRUE(stub->CancelJob(&c2, cr, &out).ok());
  EXPECT_EQ(out.state(), v1::JOB_STATE_CANCELLED);
  grpc::ClientContext c3;
  Prepare(&c3);
  cr.set_job_id(running.job().id());
  ASSERT_TRUE(stub->CancelJob(&c3, cr, &out).ok());
  EXPECT_TRUE(out.cancel_requested());
  runner_->AllowLayers(10);
  EXPECT_EQ(WaitFor(running.job().id(), v1::JOB_STATE_CANCELLED).error().reason(), "cancelled");
}

TEST_F(DaemonTest, BearerTokensAndRoles) {
  const std::string tokens = dir_.Write("tokens", kTokens);
  ASSERT_EQ(::chmod(tokens.c_str(), 0600), 0);
  config_.token_file = tokens;
  StartDaemon();
  auto ch = Insecure();
  v1::SubmitJobResponse resp;
  grpc::Status none = Submit(ch, Req(), &resp);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(none.error_message(), HasSubstr("missing credentials"));
  EXPECT_EQ(Submit(ch, Req(), &resp, "wrong-token-0123456789").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetInfo(ch).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status denied = Submit(ch, Req(), &resp, "reader-token-0123456789");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("needs submit"));
  EXPECT_TRUE(GetInfo(ch, "reader-token-0123456789").ok());
  ASSERT_TRUE(Submit(ch, Req(), &resp, "submit-token-0123456789").ok());
  EXPECT_EQ(resp.job().owner(), "ci");
  // Health stays open to probes without a token.
  auto health = grpc::health::v1::Health::NewStub(ch);
  grpc::ClientContext ctx;
  Prepare(&ctx);
  grpc::health::v1::HealthCheckResponse hr;
  ASSERT_TRUE(health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &hr).ok());
  EXPECT_EQ(hr.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(DaemonTest, TlsAndMutualTls) {
  TestCerts certs(dir_.Mkdir("certs"));
  ASSERT_TRUE(certs.ok()) << certs.error();
  config_.tls_cert = certs.server_cert();
  config_.tls_key = certs.server_key();
  StartDaemon();
  EXPECT_TRUE(GetInfo(Tls(certs.ca())).ok());
  // Plaintext to a TLS port, and TLS trusting the wrong CA, both fail to connect.
  EXPECT_EQ(GetInfo(Insecure()).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetInfo(Tls(certs.rogue_ca())).error_code(), grpc::StatusCode::UNAVAILABLE);
  daemon_.reset();

  config_.tls_client_ca = certs.ca();
  StartDaemon();
  EXPECT_TRUE(GetInfo(Tls(certs.ca(), certs.client_cert(), certs.client_key())).ok());
  EXPECT_EQ(GetInfo(Tls(certs.ca())).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetInfo(Tls(certs.ca(), certs.rogue_cert(), certs.rogue_key())).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(DaemonTest, UnreadableTlsMaterialRefusesToStart) {
  config_.tls_cert = dir_.Write("bad.pem", "not a certificate");
  config_.tls_key = dir_.Write("bad.key", "not a key");
  EXPECT_EQ(Daemon::Create(config_, std::make_unique<FakeJobRunner>()).status().code(),
            absl::StatusCode::kInvalidArgument);
  config_.tls_cert = dir_.path() + "/missing.pem";
  EXPECT_FALSE(Daemon::Create(config_, std::make_unique<FakeJobRunner>()).ok());
}

// Lists services through server reflection with a raw call (Debian ships no reflection
// proto): the request is ServerReflectionRequest{list_services: ""}, i.e. bytes 0x3a 0x00.
std::string ReflectionListServices(std::shared_ptr<grpc::Channel> ch) {
  grpc::GenericStub stub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  void* tag;
  bool ok;
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  std::string out;
  if (ok) {
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    for (const grpc::Slice& s : slices)
      out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return out;
}

TEST_F(DaemonTest, HealthReflectionAndMetricsOverHttp) {
  StartDaemon();
  auto ch = Insecure();
  auto health = grpc::health::v1::Health::NewStub(ch);
  for (const char* service : {"", "prunerd.v1.PrunerService"}) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok()) << service;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  const std::string services = ReflectionListServices(ch);
  EXPECT_THAT(services, HasSubstr("prunerd.v1.PrunerService"));
  EXPECT_THAT(services, HasSubstr("grpc.health.v1.Health"));

  std::string host = daemon_->http_address().substr(0, daemon_->http_address().rfind(':'));
  int port = std::stoi(daemon_->http_address().substr(daemon_->http_address().rfind(':') + 1));
  httplib::Client http(host, port);
  auto ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(http.Get("/healthz")->status, 200);
  auto before = http.Get("/metrics");
  ASSERT_TRUE(before);
  EXPECT_THAT(before->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  auto m0 = ParsePrometheusText(before->body);
  ASSERT_TRUE(m0.ok()) << m0.status();
  EXPECT_EQ(*m0->at("prunerd_jobs_submitted_total").Find({{"method", "wanda"}}), 0);

  runner_->SetScript({.layers = 4});
  v1::SubmitJobResponse resp;
  ASSERT_TRUE(Submit(ch, Req(), &resp).ok());
  WaitFor(resp.job().id(), v1::JOB_STATE_SUCCEEDED);
  auto m1 = ParsePrometheusText(http.Get("/metrics")->body);
  ASSERT_TRUE(m1.ok()) << m1.status();
  EXPECT_EQ(*m1->at("prunerd_jobs_submitted_total").Find({{"method", "wanda"}}), 1);
  EXPECT_EQ(
      *m1->at("prunerd_jobs_finished_total").Find({{"method", "wanda"}, {"outcome", "succeeded"}}),
      1);
  EXPECT_EQ(*m1->at("prunerd_jobs").Find({{"state", "succeeded"}}), 1);
  EXPECT_EQ(*m1->at("prunerd_layer_duration_seconds")
                 .Find({{"method", "wanda"}}, "prunerd_layer_duration_seconds_count"),
            4);
  EXPECT_EQ(*m1->at("prunerd_calibration_tokens_total").Find({{"method", "wanda"}}), 2 * 16);
  EXPECT_EQ(*m1->at("prunerd_queue_wait_seconds").Find({}, "prunerd_queue_wait_seconds_count"), 1);
}

TEST_F(DaemonTest, DrainRefusesSubmitsInterruptsJobsAndEndsStreams) {
  StartDaemon();
  runner_->SetScript({.layers = 3, .gated = true});
  auto ch = Insecure();
  v1::SubmitJobResponse resp;
  ASSERT_TRUE(Submit(ch, Req(), &resp).ok());
  ASSERT_TRUE(runner_->WaitForBlocked());
  const std::string id = resp.job().id();
  std::vector<v1::JobEvent> events;
  grpc::Status watch_status;
  std::thread watcher([&] {
    auto stub = v1::PrunerService::NewStub(ch);
    grpc::ClientContext ctx;
    v1::WatchJobRequest w;
    w.set_job_id(id);
    auto reader = stub->WatchJob(&ctx, w);
    v1::JobEvent ev;
    while (reader->Read(&ev)) events.push_back(ev);
    watch_status = reader->Finish();
  });
  absl::SleepFor(absl::Milliseconds(100));
  bool clean = false;
  std::thread stopper([&] { clean = daemon_->Shutdown(); });
  // While the running job has not reached its layer boundary: NOT_SERVING, submits refused.
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(daemon_->ready());
  {
    auto health = grpc::health::v1::Health::NewStub(ch);
    grpc::ClientContext ctx;
    Prepare(&ctx);
    grpc::health::v1::HealthCheckResponse hr;
    ASSERT_TRUE(health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &hr).ok());
    EXPECT_EQ(hr.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    v1::SubmitJobResponse r2;
    EXPECT_EQ(Submit(ch, Req(), &r2).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  runner_->AllowLayers(1);
  stopper.join();
  watcher.join();
  EXPECT_TRUE(clean);
  EXPECT_EQ(watch_status.error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[events.size() - 2].type(), v1::JobEvent::TYPE_INTERRUPTED);
  EXPECT_EQ(events.back().type(), v1::JobEvent::TYPE_STREAM_END);
  daemon_.reset();
  // The next daemon resumes it.
  StartDaemon();
  runner_->SetScript({.layers = 3});
  v1::Job job = WaitFor(id, v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.attempt(), 2);
  EXPECT_EQ(job.crash_recoveries(), 0);
}

TEST(ServerConfigTest, FileThenFlagsOverride) {
  TempDir dir;
  const std::string cfg = dir.Write(
      "prunerd.json",
      "{\"listen\": \"127.0.0.1:7000\", \"data_dir\": \"/var/x\", \"model_root\": [\"/a\", \"/b\"],"
      " \"retention_max_age\": \"30d\", \"max-crash-retries\": 3, \"devices\": \"cuda:0,cuda:1\","
      " \"strict_token_file_mode\": false}");
  std::string help;
  auto c = ParseServeArgs({"--config", cfg, "--listen", "127.0.0.1:7001"}, &help);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:7001");
  EXPECT_EQ(c->data_dir, "/var/x");
  EXPECT_EQ(c->model_roots, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(c->retention_max_age, absl::Hours(24 * 30));
  EXPECT_EQ(c->max_crash_retries, 3);
  EXPECT_EQ(c->devices, (std::vector<std::string>{"cuda:0", "cuda:1"}));
  EXPECT_FALSE(c->strict_token_file_mode);
  auto roots = ParseServeArgs({"--config", cfg, "--model-root", "/c"}, &help);
  ASSERT_TRUE(roots.ok());
  EXPECT_EQ(roots->model_roots, (std::vector<std::string>{"/c"}));
  EXPECT_TRUE(ParseServeArgs({"--help"}, &help).ok());
  EXPECT_THAT(help, HasSubstr("--tls-client-ca"));
}

TEST(ServerConfigTest, RefusesUnsafeOrBrokenConfigurations) {
  std::string help;
  auto remote = ParseServeArgs({"--data-dir", "/d", "--listen", "0.0.0.0:50051"}, &help);
  EXPECT_EQ(remote.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(remote.status().message()), HasSubstr("refusing plaintext"));
  EXPECT_TRUE(
      ParseServeArgs({"--data-dir", "/d", "--listen", "0.0.0.0:50051", "--allow-insecure-remote"},
                     &help)
          .ok());
  EXPECT_TRUE(ParseServeArgs({"--data-dir", "/d", "--listen", "[::1]:50051"}, &help).ok());
  EXPECT_TRUE(
      ParseServeArgs(
          {"--data-dir", "/d", "--listen", "0.0.0.0:1", "--tls-cert", "c", "--tls-key", "k"}, &help)
          .ok());
  EXPECT_FALSE(ParseServeArgs({"--listen", "127.0.0.1:1"}, &help).ok());  // no data dir
  EXPECT_FALSE(ParseServeArgs({"--data-dir", "/d", "--tls-cert", "c"}, &help).ok());
  EXPECT_FALSE(ParseServeArgs({"--data-dir", "/d", "--tls-client-ca", "ca"}, &help).ok());
  EXPECT_FALSE(ParseServeArgs({"--data-dir", "/d", "--retention-max-age", "soon"}, &help).ok());
  EXPECT_FALSE(ParseServeArgs({"--data-dir", "/d", "--devices", "tpu:0"}, &help).ok());
  EXPECT_FALSE(ParseServeArgs({"--data-dir", "/d", "--bogus"}, &help).ok());
  EXPECT_EQ(*ParseDurationFlag("1.5d"), absl::Hours(36));
  EXPECT_EQ(*ParseDurationFlag("500ms"), absl::Milliseconds(500));
}

}  // namespace
}  // namespace prunerd
