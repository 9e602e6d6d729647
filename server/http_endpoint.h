// File: http_endpoint.h
//
// The daemon's plain-HTTP side for monitoring, served with cpp-httplib (not prometheus-cpp's
// Exposer, whose civetweb threads cannot start beside CUDA libtorch; toolchain.md G3):
//
//   GET /metrics  Prometheus text format 0.0.4 (ServerMetrics::Render)
//   GET /healthz  200 "ok" while the process serves (liveness)
//   GET /readyz   200 "ready" once recovery is done and while not draining; 503 otherwise
//
//   HttpEndpoint http(&metrics, [&] { return ready; });
//   RETURN_IF_ERROR(http.Start("127.0.0.1:0"));   // port 0: any free port
//   int port = http.port();
//   ...
//   http.Stop();
//
// Thread-safety: Start/Stop from one thread; handlers run on httplib's worker threads and only
// call the thread-safe ServerMetrics and the `ready` callback.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace prunerd {

class HttpEndpoint {
 public:
  HttpEndpoint(ServerMetrics* metrics, std::function<bool()> ready);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds host:port (port 0 = any) and serves on a background thread. InvalidArgument for a
  // malformed address, Unavailable when the port cannot be bound.
  absl::Status Start(const std::string& host_port);
  void Stop();
  int port() const { return port_; }
  const std::string& host() const { return host_; }

 private:
  ServerMetrics* metrics_;
  std::function<bool()> ready_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string host_;
  int port_ = 0;
};

// Splits "host:port" / "[v6]:port". InvalidArgument when malformed.
absl::Status SplitHostPort(const std::string& host_port, std::string* host, int* port);
// 127.0.0.0/8, ::1, localhost.
bool IsLoopbackHost(const std::string& host);

}  // namespace prunerd
