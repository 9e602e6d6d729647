// File: subprocess.h
//
// Child processes for the end-to-end tests: the real prunerd daemon (started on a free
// loopback port, found through its --ready-file) and prunectl invocations with their exit
// code, stdout and stderr.
//
//   DaemonProcess d(work_dir, {"--model-root", data});
//   ASSERT_TRUE(d.Start()) << d.Log();
//   CommandResult r = RunCommand({bin + "/prunectl", "info", "--target", d.target()});
//   d.Kill(SIGKILL);
//
// Everything is prepared before fork(); the child only calls async-signal-safe functions
// (dup2, execve, _exit), which is required because the test process has threads.
//
// Thread-safety: one object per thread.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/testing/test_data.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace prunerd {

// Where the binaries and the shared data are: core/testing/test_data.h (environment first,
// then what CMake compiled in).
inline std::string TestData() { return TestDataDir(); }
inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Subprocess {
 public:
  // Starts argv with the current environment plus `env` ("K=V"); stdout/stderr go to files.
  Subprocess(const std::vector<std::string>& argv, const std::string& out_path,
             const std::string& err_path, const std::vector<std::string>& env = {}) {
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
    for (const std::string& kv : env) envs.push_back(kv);
    std::vector<char*> cargv, cenv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const std::string& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_ = ::fork();
    if (pid_ == 0) {
      // Unblock what the test runner may have blocked; the daemon blocks again itself.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execve(cargv[0], cargv.data(), cenv.data());
      _exit(127);
    }
    ::close(out);
    ::close(err);
    ::close(in);
  }
  ~Subprocess() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }
  pid_t pid() const { return pid_; }
  bool Signal(int sig) { return pid_ > 0 && ::kill(pid_, sig) == 0; }
  // The exit code (128 + signal when killed), or nullopt when still running at the deadline.
  std::optional<int> Wait(absl::Duration timeout) {
    if (status_) return status_;
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
      }
      if (absl::Now() >= deadline) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct CommandResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion (killed after `timeout`).
inline CommandResult RunCommand(const std::vector<std::string>& argv,
                                const std::vector<std::string>& env = {},
                                absl::Duration timeout = absl::Seconds(300)) {
  static int counter = 0;
  const char* tmp = std::getenv("TMPDIR");
  const std::string base =
      absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/prunerd-e2e-cmd-", ::getpid(), "-", counter++);
  CommandResult r;
  {
    Subprocess p(argv, base + ".out", base + ".err", env);
    std::optional<int> code = p.Wait(timeout);
    r.code = code ? *code : -1;
  }
  r.out = ReadText(base + ".out");
  r.err = ReadText(base + ".err");
  ::unlink((base + ".out").c_str());
  ::unlink((base + ".err").c_str());
  return r;
}

// The real prunerd on 127.0.0.1 with OS-chosen ports, discovered through --ready-file.
class DaemonProcess {
 public:
  DaemonProcess(std::string dir, std::vector<std::string> args)
      : dir_(std::move(dir)), args_(std::move(args)) {}

  bool Start(absl::Duration timeout = absl::Seconds(60)) {
    const std::string ready = dir_ + "/ready.json";
    ::unlink(ready.c_str());
    std::vector<std::string> argv = {
        BinDir() + "/prunerd", "serve",      "--listen",     "127.0.0.1:0",  "--http-listen",
        "127.0.0.1:0",         "--data-dir", dir_ + "/data", "--ready-file", ready};
    argv.insert(argv.end(), args_.begin(), args_.end());
    ++starts_;
    process_ = std::make_unique<Subprocess>(argv, dir_ + "/daemon.out",
                                            absl::StrCat(dir_, "/daemon-", starts_, ".log"));
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (process_->Wait(absl::ZeroDuration())) return false;  // exited
      struct stat st;
      if (::stat(ready.c_str(), &st) == 0) {
        nlohmann::json j = nlohmann::json::parse(ReadText(ready), nullptr, false);
        if (j.is_object()) {
          target_ = j["grpc"].get<std::string>();
          http_ = j["http"].get<std::string>();
          return true;
        }
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }
  const std::string& target() const { return target_; }
  const std::string& http() const { return http_; }
  Subprocess* process() { return process_.get(); }
  bool Kill(int sig) { return process_ && process_->Signal(sig); }
  std::optional<int> Wait(absl::Duration timeout) { return process_->Wait(timeout); }
  std::string Log() const { return ReadText(absl::StrCat(dir_, "/daemon-", starts_, ".log")); }

 private:
  std::string dir_;
  std::vector<std::string> args_;
  std::unique_ptr<Subprocess> process_;
  std::string target_;
  std::string http_;
  int starts_ = 0;
};

}  // namespace prunerd
