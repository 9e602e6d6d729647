// File: commands.h
//
// The prunectl subcommands. Each takes the arguments after its name and returns the process
// exit code (client/exit_codes.h). Results go to stdout (text, or JSON with --output json);
// progress and diagnostics go to stderr.
//
//   prunectl submit --model M --method wanda --ratio 0.5 --calib-dataset wiki [--wait]
//   prunectl get JOB | list [--state running] | watch JOB | cancel JOB | wait JOB
//   prunectl download JOB [--dir D] [--artifact NAME] | info | health
//
// Thread-safety: each command runs on the calling thread.
#pragma once

#include <string>
#include <vector>

namespace prunerd {

int RunPrunectl(const std::vector<std::string>& args);

int SubmitCommand(const std::vector<std::string>& args);
int GetCommand(const std::vector<std::string>& args);
int ListCommand(const std::vector<std::string>& args);
int WatchCommand(const std::vector<std::string>& args);
int WaitCommand(const std::vector<std::string>& args);
int CancelCommand(const std::vector<std::string>& args);
int DownloadCommand(const std::vector<std::string>& args);
int InfoCommand(const std::vector<std::string>& args);
int HealthCommand(const std::vector<std::string>& args);

}  // namespace prunerd
