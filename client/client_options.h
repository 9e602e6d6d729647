// File: client_options.h
//
// How prunectl reaches the daemon: target, TLS/mTLS material and the bearer token, from flags
// or the environment (flags win):
//
//   --target HOST:PORT     PRUNECTL_TARGET       (default 127.0.0.1:50051)
//   --token TOKEN          PRUNECTL_TOKEN
//   --token-file FILE      PRUNECTL_TOKEN_FILE   (first line is the token)
//   --ca-cert PEM          PRUNECTL_CA_CERT      (enables TLS; verifies the server)
//   --client-cert PEM      PRUNECTL_CLIENT_CERT  (mTLS)
//   --client-key PEM       PRUNECTL_CLIENT_KEY   (mTLS)
//   --tls                  TLS with the system roots
//   --tls-server-name N    override the name checked against the server certificate
//   --timeout SECONDS      deadline of unary calls (default 30)
//   --output text|json
//
//   ClientOptions opts;
//   AddClientOptions(parser, &opts);
//   ... parse ...
//   ASSIGN_OR_RETURN(Connection conn, Connect(opts));
//   grpc::ClientContext ctx;
//   conn.Prepare(&ctx, /*unary=*/true);
//   conn.stub->GetJob(&ctx, req, &job);
//
// Thread-safety: a Connection may be shared; each call needs its own ClientContext.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/common/arg_parser.h"
#include "prunerd/v1/service.grpc.pb.h"

namespace prunerd {

struct ClientOptions {
  std::string target = "127.0.0.1:50051";
  std::string token;
  std::string token_file;
  std::string ca_cert;
  std::string client_cert;
  std::string client_key;
  bool tls = false;
  std::string tls_server_name;
  double timeout_seconds = 30;
  std::string output = "text";
  bool json() const { return output == "json"; }
};

void AddClientOptions(ArgParser& parser, ClientOptions* options);

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::PrunerService::Stub> stub;
  std::string token;
  double timeout_seconds = 30;
  // Adds the token and, for unary calls, the deadline.
  void Prepare(grpc::ClientContext* ctx, bool unary) const;
};

// Reads certificates and the token file. InvalidArgument naming the flag on errors.
absl::StatusOr<Connection> Connect(const ClientOptions& options);

}  // namespace prunerd
