#include "server/daemon.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/artifact_store.h"
#include "server/auth.h"
#include "server/dataset_registry.h"
#include "server/grpc_service.h"
#include "server/http_endpoint.h"
#include "server/job_manager.h"
#include "server/logging.h"
#include "server/metrics.h"
#include "server/path_policy.h"
#include "server/spec_resolver.h"
#include "server/sqlite_job_store.h"

namespace prunerd {
namespace {

constexpr char kServiceName[] = "prunerd.v1.PrunerService";

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  absl::StatusOr<std::string> text = FileSystem::Default()->ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", text.status().message()));
  }
  if (text->find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", path, " is not PEM"));
  }
  return text;
}

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

LogLevel ParseLogLevel(const std::string& s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warning") return LogLevel::kWarning;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

}  // namespace

Daemon::Daemon(ServerConfig config, std::unique_ptr<JobRunner> runner)
    : config_(std::move(config)), runner_(std::move(runner)) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Create(ServerConfig config,
                                                       std::unique_ptr<JobRunner> runner) {
  RETURN_IF_ERROR(config.Validate());
  SetLogLevel(ParseLogLevel(config.log_level));
  {
    // Absolute, so engine messages and artifact paths do not depend on the cwd.
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(config.data_dir, ec);
    if (!ec) config.data_dir = abs.lexically_normal().string();
  }
  std::unique_ptr<Daemon> d(new Daemon(std::move(config), std::move(runner)));
  const ServerConfig& c = d->config_;
  RETURN_IF_ERROR(FileSystem::Default()->CreateDirs(c.data_dir));
  ASSIGN_OR_RETURN(PathPolicy roots, PathPolicy::Create(c.model_roots));
  d->roots_ = std::make_unique<PathPolicy>(std::move(roots));
  d->datasets_ = std::make_unique<DatasetRegistry>(c.dataset_dir);
  if (!c.dataset_dir.empty()) {
    if (!FileSystem::Default()->IsDirectory(c.dataset_dir)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--dataset-dir ", c.dataset_dir, ": not a directory"));
    }
    RETURN_IF_ERROR(d->datasets_->List().status());
  }
  d->resolver_ = std::make_unique<SpecResolver>(d->roots_.get(), d->datasets_.get());
  ASSIGN_OR_RETURN(d->store_, SqliteJobStore::Open(absl::StrCat(c.data_dir, "/jobs.db")));
  d->artifacts_ = std::make_unique<ArtifactStore>(c.data_dir, FileSystem::Default());
  d->metrics_ = std::make_unique<ServerMetrics>(PrunerdVersion(), PrunerdCommit());
  if (c.token_file.empty()) {
    d->auth_ = TokenAuthenticator::Disabled();
  } else {
    ASSIGN_OR_RETURN(d->auth_,
                     TokenAuthenticator::FromFile(c.token_file, c.strict_token_file_mode));
  }
  // Fail early on unreadable TLS material (never start with an empty cert).
  if (c.tls()) {
    RETURN_IF_ERROR(ReadPem("tls-cert", c.tls_cert).status());
    RETURN_IF_ERROR(ReadPem("tls-key", c.tls_key).status());
    if (!c.tls_client_ca.empty())
      RETURN_IF_ERROR(ReadPem("tls-client-ca", c.tls_client_ca).status());
  }
  return d;
}

Daemon::~Daemon() {
  if (ready_ || server_) Shutdown();
  server_.reset();
  http_.reset();
  service_.reset();
  if (!clean_shutdown_) {
    // A worker is still inside the engine: leave everything it may touch alive (the process
    // is about to exit; recovery handles the job at the next start).
    (void)jobs_.release();
    (void)runner_.release();
    (void)store_.release();
    (void)artifacts_.release();
    (void)resolver_.release();
    (void)roots_.release();
    (void)datasets_.release();
    (void)metrics_.release();
  }
}

bool Daemon::ready() const { return ready_.load(); }

absl::Status Daemon::Start() {
  const ServerConfig& c = config_;
  std::vector<std::string> devices = c.devices;
  if (devices.empty()) {
    for (const DeviceInfo& di : runner_->Devices()) {
      if (di.name.rfind("cuda:", 0) == 0) devices.push_back(di.name);
    }
    if (devices.empty()) devices.push_back("cpu");
  }
  JobManager::Options opts;
  opts.devices = devices;
  opts.max_crash_retries = static_cast<int>(c.max_crash_retries);
  opts.progress_interval = c.progress_interval;
  opts.retention_max_age = c.retention_max_age;
  opts.retention_max_jobs = c.retention_max_jobs;
  opts.version = PrunerdVersion();
  opts.commit = PrunerdCommit();
  jobs_ = std::make_unique<JobManager>(opts, JobManager::Deps{.store = store_.get(),
                                                              .runner = runner_.get(),
                                                              .artifacts = artifacts_.get(),
                                                              .resolver = resolver_.get(),
                                                              .datasets = datasets_.get(),
                                                              .metrics = metrics_.get(),
                                                              .clock = RealClock::Get()});
  RETURN_IF_ERROR(jobs_->Recover());
  jobs_->Start();

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (c.tls()) {
    grpc::SslServerCredentialsOptions ssl(
        c.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ASSIGN_OR_RETURN(std::string cert, ReadPem("tls-cert", c.tls_cert));
    ASSIGN_OR_RETURN(std::string key, ReadPem("tls-key", c.tls_key));
    ssl.pem_key_cert_pairs.push_back({key, cert});
    if (!c.tls_client_ca.empty()) {
      ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("tls-client-ca", c.tls_client_ca));
    }
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
    std::string host;
    int port;
    RETURN_IF_ERROR(SplitHostPort(c.listen, &host, &port));
    if (!IsLoopbackHost(host)) {
      LogWarning(absl::StrCat("plaintext gRPC on non-loopback ", c.listen,
                              " (--allow-insecure-remote); tokens travel unencrypted"));
    }
  }
  if (!auth_->enabled()) LogWarning("no --token-file: authentication is off");

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  service_ = std::make_unique<PrunerServiceImpl>(jobs_.get(), auth_.get());
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(c.listen, creds, &selected_port);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", c.listen));
  }
  std::string host;
  int port;
  RETURN_IF_ERROR(SplitHostPort(c.listen, &host, &port));
  grpc_address_ = JoinHostPort(host, selected_port);
  if (auto* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(kServiceName, true);
  }
  if (!c.http_listen.empty() && c.http_listen != "off") {
    http_ = std::make_unique<HttpEndpoint>(metrics_.get(), [this] { return ready_.load(); });
    RETURN_IF_ERROR(http_->Start(c.http_listen));
    http_address_ = JoinHostPort(http_->host(), http_->port());
  }
  ready_ = true;
  RETURN_IF_ERROR(WriteReadyFile());
  LogInfo(absl::StrCat("prunerd ", PrunerdVersion(), " (", PrunerdCommit(), ", ",
                       runner_->EngineVersion(), ") serving gRPC on ", grpc_address_,
                       c.tls() ? (c.tls_client_ca.empty() ? " (TLS)" : " (mTLS)") : " (plaintext)",
                       http_address_.empty() ? "" : absl::StrCat(", HTTP on ", http_address_), "; ",
                       devices.size(), " worker(s)"));
  return absl::OkStatus();
}

absl::Status Daemon::WriteReadyFile() {
  if (config_.ready_file.empty()) return absl::OkStatus();
  nlohmann::json j = {
      {"grpc", grpc_address_}, {"http", http_address_}, {"pid", static_cast<int64_t>(::getpid())}};
  return WriteFileAtomically(FileSystem::Default(), config_.ready_file, j.dump() + "\n");
}

bool Daemon::Shutdown() {
  if (shutdown_started_.exchange(true)) {
    shutdown_done_.WaitForNotification();
    return clean_shutdown_;
  }
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + config_.shutdown_grace;
  LogInfo(absl::StrCat("shutting down (grace ", absl::FormatDuration(config_.shutdown_grace), ")"));
  ready_ = false;
  if (server_) {
    if (auto* health = server_->GetHealthCheckService()) {
      health->SetServingStatus(false);
      health->SetServingStatus(kServiceName, false);
    }
  }
  if (jobs_) {
    jobs_->BeginDrain();
    // Keep a little of the grace for the streams and the RPC layer.
    const absl::Duration reserve = std::min(absl::Seconds(2), config_.shutdown_grace / 4);
    clean_shutdown_ = jobs_->WaitForWorkers(deadline - reserve);
    if (!clean_shutdown_) {
      // A graceful stop is not a crash: record the stragglers as interrupted now, so the next
      // start re-queues them without counting a crash against them.
      jobs_->InterruptRunning(
          "interrupted by a daemon shutdown before the job reached a layer boundary "
          "(--shutdown-grace); queued again, runs at the next start");
    }
    jobs_->EndStreams();
  }
  if (server_) server_->Shutdown(absl::ToChronoTime(deadline));
  if (http_) http_->Stop();
  LogInfo(absl::StrCat("shut down in ", absl::FormatDuration(absl::Now() - start)));
  shutdown_done_.Notify();
  return clean_shutdown_;
}

void Daemon::Wait() { shutdown_done_.WaitForNotification(); }

}  // namespace prunerd
