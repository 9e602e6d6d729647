#include "client/client_options.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace prunerd {
namespace {

absl::StatusOr<std::string> ReadFileFlag(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void AddClientOptions(ArgParser& p, ClientOptions* o) {
  p.AddString("target", &o->target, "daemon address host:port", false, "PRUNECTL_TARGET");
  p.AddString("token", &o->token, "bearer token", false, "PRUNECTL_TOKEN");
  p.AddString("token-file", &o->token_file, "file whose first line is the bearer token", false,
              "PRUNECTL_TOKEN_FILE");
  p.AddString("ca-cert", &o->ca_cert, "CA certificate (PEM) of the daemon; enables TLS", false,
              "PRUNECTL_CA_CERT");
  p.AddString("client-cert", &o->client_cert, "client certificate (PEM) for mTLS", false,
              "PRUNECTL_CLIENT_CERT");
  p.AddString("client-key", &o->client_key, "client private key (PEM) for mTLS", false,
              "PRUNECTL_CLIENT_KEY");
  p.AddBool("tls", &o->tls, "use TLS with the system's root certificates");
  p.AddString("tls-server-name", &o->tls_server_name,
              "name to verify in the server certificate (default: the target's host)");
  p.AddDouble("timeout", &o->timeout_seconds, "deadline of each unary call, seconds");
  p.AddString("output", &o->output, "text or json");
}

void Connection::Prepare(grpc::ClientContext* ctx, bool unary) const {
  if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  if (unary && timeout_seconds > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  }
}

absl::StatusOr<Connection> Connect(const ClientOptions& o) {
  if (o.output != "text" && o.output != "json") {
    return absl::InvalidArgumentError("--output: text or json");
  }
  Connection c;
  c.timeout_seconds = o.timeout_seconds;
  c.token = o.token;
  if (c.token.empty() && !o.token_file.empty()) {
    absl::StatusOr<std::string> t = ReadFileFlag("token-file", o.token_file);
    if (!t.ok()) return t.status();
    c.token = std::string(absl::StripAsciiWhitespace(t->substr(0, t->find('\n'))));
    if (c.token.empty()) return absl::InvalidArgumentError("--token-file: empty");
  }
  if (o.client_cert.empty() != o.client_key.empty()) {
    return absl::InvalidArgumentError("--client-cert and --client-key go together");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  if (o.tls || !o.ca_cert.empty() || !o.client_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!o.ca_cert.empty()) {
      absl::StatusOr<std::string> ca = ReadFileFlag("ca-cert", o.ca_cert);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (!o.client_cert.empty()) {
      absl::StatusOr<std::string> cert = ReadFileFlag("client-cert", o.client_cert);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadFileFlag("client-key", o.client_key);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
    if (!o.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(o.tls_server_name);
    }
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  args.SetMaxReceiveMessageSize(64 << 20);
  c.channel = grpc::CreateCustomChannel(o.target, creds, args);
  c.stub = v1::PrunerService::NewStub(c.channel);
  return c;
}

}  // namespace prunerd
