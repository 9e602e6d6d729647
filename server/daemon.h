// File: daemon.h
//
// The whole daemon wired together from a ServerConfig: job store (SQLite in data_dir),
// artifact store, path roots and datasets, metrics, JobManager (scheduler + workers), the gRPC
// server (PrunerService, grpc.health.v1, reflection; TLS/mTLS and bearer tokens per config)
// and the HTTP endpoint. main() and the in-process RPC test fixture both use it; the engine
// comes in as a JobRunner, so tests run it with a fake.
//
// Start order: open the store -> recover interrupted jobs -> start workers -> bind gRPC and
// HTTP -> health SERVING, /readyz 200 -> write the ready file. Nothing is served before
// recovery is done.
//
// Shutdown order (SIGTERM): health NOT_SERVING and /readyz 503; SubmitJob answers UNAVAILABLE;
// running jobs stop at their next layer boundary and are recorded as interrupted (QUEUED,
// resumed at the next start); Watch streams get a final TYPE_STREAM_END event; then gRPC
// Shutdown with the remaining grace as deadline; the HTTP endpoint stops; the store closes.
//
//   ASSIGN_OR_RETURN(auto d, Daemon::Create(config, std::make_unique<EngineJobRunner>()));
//   RETURN_IF_ERROR(d->Start());
//   ... sigwait ...
//   d->Shutdown();
//
// Thread-safety: Start, Shutdown and Wait may be called from different threads; Shutdown is
// idempotent.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "core/common/build_info.h"
#include "server/job_runner.h"
#include "server/server_config.h"

namespace grpc {
class Server;
}

namespace prunerd {

class ArtifactStore;
class DatasetRegistry;
class HttpEndpoint;
class JobManager;
class PathPolicy;
class PrunerServiceImpl;
class ServerMetrics;
class SpecResolver;
class SqliteJobStore;
class TokenAuthenticator;

class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Create(ServerConfig config,
                                                        std::unique_ptr<JobRunner> runner);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  absl::Status Start();
  // The drain sequence above. Returns false when running jobs did not stop within the grace
  // (their records stay RUNNING and recovery handles them at the next start).
  bool Shutdown();
  // Blocks until Shutdown() has finished.
  void Wait();

  // "127.0.0.1:43127" once started.
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& http_address() const { return http_address_; }
  bool ready() const;
  JobManager* jobs() { return jobs_.get(); }
  ServerMetrics* metrics() { return metrics_.get(); }
  const ServerConfig& config() const { return config_; }

 private:
  explicit Daemon(ServerConfig config, std::unique_ptr<JobRunner> runner);
  absl::Status WriteReadyFile();

  ServerConfig config_;
  std::unique_ptr<JobRunner> runner_;
  std::unique_ptr<PathPolicy> roots_;
  std::unique_ptr<DatasetRegistry> datasets_;
  std::unique_ptr<SpecResolver> resolver_;
  std::unique_ptr<SqliteJobStore> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<TokenAuthenticator> auth_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<PrunerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpEndpoint> http_;
  std::string grpc_address_;
  std::string http_address_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> shutdown_started_{false};
  bool clean_shutdown_ = true;
  absl::Notification shutdown_done_;
};

}  // namespace prunerd
