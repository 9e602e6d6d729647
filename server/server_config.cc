#include "server/server_config.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/arg_parser.h"
#include "nlohmann/json.hpp"
#include "server/file_system.h"
#include "server/http_endpoint.h"

namespace prunerd {
namespace {

// String-typed staging for options that need parsing after the flags.
struct RawOptions {
  std::string config;
  std::string devices;
  std::string retention_max_age = "0";
  std::string shutdown_grace = "20s";
  std::string progress_interval = "500ms";
  std::vector<std::string> model_roots;
};

void Register(ArgParser& p, ServerConfig* c, RawOptions* raw) {
  p.AddString("config", &raw->config, "JSON config file (flags override it)");
  p.AddString("listen", &c->listen, "gRPC address host:port (port 0 = any free port)");
  p.AddString("http-listen", &c->http_listen,
              "HTTP address for /metrics /healthz /readyz (\"off\" = none)");
  p.AddString("data-dir", &c->data_dir, "job store and artifacts directory");
  p.AddRepeated("model-root", &raw->model_roots,
                "directory that models and data files must lie in");
  p.AddString("dataset-dir", &c->dataset_dir, "directory of named datasets");
  p.AddString("devices", &raw->devices,
              "comma-separated workers: cpu, cuda:0, ... (default: every GPU, else cpu)");
  p.AddString("tls-cert", &c->tls_cert, "server certificate (PEM); enables TLS");
  p.AddString("tls-key", &c->tls_key, "server private key (PEM)");
  p.AddString("tls-client-ca", &c->tls_client_ca, "CA (PEM) for client certificates; enables mTLS");
  p.AddString("token-file", &c->token_file, "bearer tokens with roles (see server/auth.h)");
  p.AddBool("strict-token-file-mode", &c->strict_token_file_mode,
            "refuse a token file readable by group/others");
  p.AddBool("allow-insecure-remote", &c->allow_insecure_remote,
            "allow plaintext gRPC on a non-loopback address");
  p.AddInt("max-crash-retries", &c->max_crash_retries,
           "re-queue a job this many times after daemon crashes, then fail it");
  p.AddString("retention-max-age", &raw->retention_max_age,
              "delete finished jobs older than this (30d, 12h; 0 = never)");
  p.AddInt("retention-max-jobs", &c->retention_max_jobs,
           "keep at most this many finished jobs (-1 = no limit)");
  p.AddString("shutdown-grace", &raw->shutdown_grace,
              "on SIGTERM, wait this long for jobs and streams to stop");
  p.AddString("progress-interval", &raw->progress_interval,
              "minimum time between stored progress events within a layer");
  p.AddString("ready-file", &c->ready_file,
              "write {grpc, http, pid} JSON here once serving (for scripts and tests)");
  p.AddString("log-level", &c->log_level, "debug, info, warning or error");
}

// The config file as arguments, so it goes through the same parser as the flags.
absl::StatusOr<std::vector<std::string>> ConfigAsArgs(const std::string& path) {
  absl::StatusOr<std::string> text = FileSystem::Default()->ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--config: ", text.status().message()));
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("--config ", path, ": not a JSON object"));
  }
  std::vector<std::string> args;
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = it.key();
    std::replace(key.begin(), key.end(), '_', '-');
    if (key == "config") {
      return absl::InvalidArgumentError(absl::StrCat("--config ", path, ": nested \"config\""));
    }
    auto scalar = [&](const nlohmann::json& v) -> absl::StatusOr<std::string> {
      if (v.is_string()) return v.get<std::string>();
      if (v.is_boolean()) return std::string(v.get<bool>() ? "true" : "false");
      if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
      if (v.is_number()) return absl::StrCat(v.get<double>());
      return absl::InvalidArgumentError(
          absl::StrCat("--config ", path, ": \"", it.key(), "\" has an unsupported value"));
    };
    if (it.value().is_array()) {
      for (const auto& v : it.value()) {
        absl::StatusOr<std::string> s = scalar(v);
        if (!s.ok()) return s.status();
        args.push_back(absl::StrCat("--", key, "=", *s));
      }
    } else {
      absl::StatusOr<std::string> s = scalar(it.value());
      if (!s.ok()) return s.status();
      args.push_back(absl::StrCat("--", key, "=", *s));
    }
  }
  return args;
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text) {
  std::string t(absl::StripAsciiWhitespace(text));
  if (t == "0" || t.empty()) return absl::ZeroDuration();
  if (!t.empty() && t.back() == 'd') {
    double days;
    if (absl::SimpleAtod(t.substr(0, t.size() - 1), &days) && days >= 0) {
      return absl::Hours(24) * days;
    }
  }
  absl::Duration d;
  if (absl::ParseDuration(t, &d) && d >= absl::ZeroDuration()) return d;
  return absl::InvalidArgumentError(
      absl::StrCat("not a duration: \"", text, "\" (e.g. 30d, 12h, 90s, 500ms)"));
}

absl::Status ServerConfig::Validate() const {
  if (data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  std::string host;
  int port;
  if (absl::Status s = SplitHostPort(listen, &host, &port); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--listen: ", s.message()));
  }
  if (!http_listen.empty() && http_listen != "off") {
    std::string h;
    int p;
    if (absl::Status s = SplitHostPort(http_listen, &h, &p); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--http-listen: ", s.message()));
    }
  }
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!tls_client_ca.empty() && tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key");
  }
  if (!tls() && !IsLoopbackHost(host) && !allow_insecure_remote) {
    return absl::InvalidArgumentError(
        absl::StrCat("refusing plaintext gRPC on ", listen,
                     ": configure --tls-cert/--tls-key, listen on loopback, or force it with "
                     "--allow-insecure-remote"));
  }
  if (max_crash_retries < 0) return absl::InvalidArgumentError("--max-crash-retries: >= 0");
  for (const std::string& d : devices) {
    if (d != "cpu" && d.rfind("cuda:", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("--devices: unknown device \"", d, "\""));
    }
  }
  if (log_level != "debug" && log_level != "info" && log_level != "warning" &&
      log_level != "error") {
    return absl::InvalidArgumentError("--log-level: debug, info, warning or error");
  }
  return absl::OkStatus();
}

absl::StatusOr<ServerConfig> ParseServeArgs(const std::vector<std::string>& args,
                                            std::string* help) {
  ServerConfig config;
  RawOptions raw;
  // Pass 1: the flags alone, to find --config (and answer --help).
  {
    ServerConfig scratch;
    RawOptions scratch_raw;
    ArgParser p("prunerd serve", "Run the pruning daemon.");
    Register(p, &scratch, &scratch_raw);
    if (absl::Status s = p.Parse(args); !s.ok()) return s;
    if (p.help_requested()) {
      *help = p.Help();
      return config;
    }
    if (!p.positional().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("prunerd serve: unexpected argument \"", p.positional()[0], "\""));
    }
    raw.config = scratch_raw.config;
  }
  // Pass 2: the file, then pass 3: the flags over it.
  if (!raw.config.empty()) {
    absl::StatusOr<std::vector<std::string>> file_args = ConfigAsArgs(raw.config);
    if (!file_args.ok()) return file_args.status();
    ArgParser p("prunerd serve (--config)", "");
    Register(p, &config, &raw);
    if (absl::Status s = p.Parse(*file_args); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(raw.config, ": ", s.message()));
    }
  }
  std::vector<std::string> file_roots = raw.model_roots;
  raw.model_roots.clear();
  ArgParser p("prunerd serve", "Run the pruning daemon.");
  Register(p, &config, &raw);
  if (absl::Status s = p.Parse(args); !s.ok()) return s;
  config.model_roots = raw.model_roots.empty() ? file_roots : raw.model_roots;
  for (absl::string_view d : absl::StrSplit(raw.devices, ',', absl::SkipWhitespace())) {
    config.devices.emplace_back(absl::StripAsciiWhitespace(d));
  }
  absl::StatusOr<absl::Duration> d = ParseDurationFlag(raw.retention_max_age);
  if (!d.ok())
    return absl::InvalidArgumentError(absl::StrCat("--retention-max-age: ", d.status().message()));
  config.retention_max_age = *d;
  d = ParseDurationFlag(raw.shutdown_grace);
  if (!d.ok())
    return absl::InvalidArgumentError(absl::StrCat("--shutdown-grace: ", d.status().message()));
  config.shutdown_grace = *d;
  d = ParseDurationFlag(raw.progress_interval);
  if (!d.ok())
    return absl::InvalidArgumentError(absl::StrCat("--progress-interval: ", d.status().message()));
  config.progress_interval = *d;
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  return config;
}

}  // namespace prunerd
