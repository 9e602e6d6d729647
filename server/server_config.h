// File: server_config.h
//
// The options of `prunerd serve`, from a JSON config file (--config FILE) and command-line
// flags; flags override the file (a repeatable flag given on the command line replaces the
// file's list). Keys of the file are the flag names, with '-' or '_':
//
//   {"listen": "0.0.0.0:50051", "data_dir": "/var/lib/prunerd",
//    "model_root": ["/srv/models"], "dataset_dir": "/srv/datasets",
//    "tls_cert": "/etc/prunerd/server.pem", "tls_key": "/etc/prunerd/server.key",
//    "tls_client_ca": "/etc/prunerd/clients-ca.pem", "token_file": "/etc/prunerd/tokens",
//    "retention_max_age": "30d", "devices": "cuda:0,cuda:1"}
//
// Validate() refuses configurations that cannot work or are unsafe: no data dir, a cert
// without its key, mTLS without a server cert, or plaintext on a non-loopback address unless
// --allow-insecure-remote.
//
//   ASSIGN_OR_RETURN(ServerConfig c, ParseServeArgs(args, &help_text));
//
// Thread-safety: plain values and functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace prunerd {

struct ServerConfig {
  std::string listen = "127.0.0.1:50051";
  std::string http_listen = "127.0.0.1:9464";  // "" or "off": no HTTP endpoint
  std::string data_dir;
  std::vector<std::string> model_roots;
  std::string dataset_dir;
  std::vector<std::string> devices;  // empty: every CUDA device, or cpu when none
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;  // set: mTLS (clients must present a cert signed by it)
  std::string token_file;
  bool strict_token_file_mode = true;
  bool allow_insecure_remote = false;
  int64_t max_crash_retries = 1;
  absl::Duration retention_max_age = absl::ZeroDuration();  // 0 = keep forever
  int64_t retention_max_jobs = -1;                          // -1 = no limit
  absl::Duration shutdown_grace = absl::Seconds(20);
  absl::Duration progress_interval = absl::Milliseconds(500);
  std::string ready_file;
  std::string log_level = "info";

  bool tls() const { return !tls_cert.empty(); }
  absl::Status Validate() const;
};

// Parses `prunerd serve` arguments (after the subcommand). When --help is given, returns
// OK with *help set to the help text.
absl::StatusOr<ServerConfig> ParseServeArgs(const std::vector<std::string>& args,
                                            std::string* help);

// "30d", "12h", "90s", "500ms", "0" -> durations.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text);

}  // namespace prunerd
