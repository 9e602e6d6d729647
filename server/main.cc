// prunerd: the pruning daemon, plus offline subcommands.
//
//   prunerd [serve] [options]   run the daemon (see `prunerd serve --help`)
//   prunerd eval ...            perplexity of a model on a text (no daemon)
//   prunerd oneshot ...         prune a model once (no daemon)
//   prunerd version             version, commit and engine
//
// SIGTERM and SIGINT are blocked first thing, before any thread exists, so every thread
// inherits the mask and only the watcher thread (sigwait) sees them: the first signal starts
// the graceful shutdown, a second one exits at once.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/daemon.h"
#include "server/engine_job_runner.h"
#include "server/logging.h"
#include "server/offline_commands.h"
#include "server/server_config.h"

namespace prunerd {
namespace {

constexpr char kUsage[] =
    "usage: prunerd [serve] [options]     run the daemon (prunerd serve --help)\n"
    "       prunerd eval [options]        perplexity of a model (prunerd eval --help)\n"
    "       prunerd oneshot [options]     prune a model once (prunerd oneshot --help)\n"
    "       prunerd version\n";

int RunServe(const std::vector<std::string>& args, const sigset_t& signals) {
  std::string help;
  absl::StatusOr<ServerConfig> config = ParseServeArgs(args, &help);
  if (!config.ok()) {
    std::cerr << "prunerd: " << config.status().message() << "\n";
    return 2;
  }
  if (!help.empty()) {
    std::cout << help;
    return 0;
  }
  absl::StatusOr<std::unique_ptr<Daemon>> daemon =
      Daemon::Create(*config, std::make_unique<EngineJobRunner>());
  if (!daemon.ok()) {
    std::cerr << "prunerd: " << daemon.status().message() << "\n";
    return 2;
  }
  if (absl::Status s = (*daemon)->Start(); !s.ok()) {
    LogError(absl::StrCat("cannot start: ", s.ToString()));
    (*daemon)->Shutdown();
    return 1;
  }
  Daemon* d = daemon->get();
  std::thread watcher([d, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    LogInfo(absl::StrCat("received ", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                         "; draining (a second signal exits at once)"));
    std::thread([signals] {
      int again = 0;
      sigwait(&signals, &again);
      LogWarning("second signal: exiting now");
      std::_Exit(130);
    }).detach();
    d->Shutdown();
  });
  d->Wait();
  watcher.join();
  if (!d->Shutdown()) {
    // A worker is still inside the engine; do not wait for it.
    std::_Exit(0);
  }
  daemon->reset();
  return 0;
}

}  // namespace
}  // namespace prunerd

int main(int argc, char** argv) {
  // Before any thread starts (gRPC, torch, httplib): see the file comment.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::string> args(argv + 1, argv + argc);
  std::string command = "serve";
  if (!args.empty() && (args[0] == "--version" || (!args[0].empty() && args[0][0] != '-'))) {
    command = args[0];
    args.erase(args.begin());
  }
  if (command == "serve") return prunerd::RunServe(args, signals);
  if (command == "version" || command == "--version") {
    std::cout << "prunerd " << prunerd::PrunerdVersion() << " (" << prunerd::PrunerdCommit()
              << "), engine " << prunerd::EngineJobRunner().EngineVersion() << "\n";
    return 0;
  }
  if (command == "eval" || command == "oneshot") {
    // The offline commands handle SIGINT themselves (cancel at a layer boundary).
    pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
    return command == "eval" ? prunerd::RunEvalCommand(args) : prunerd::RunOneshotCommand(args);
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << prunerd::kUsage;
    return 0;
  }
  std::cerr << "prunerd: unknown command \"" << command << "\"\n" << prunerd::kUsage;
  return 2;
}
