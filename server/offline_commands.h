// File: offline_commands.h
//
// The offline subcommands of the prunerd binary, for scripts and benchmarks (no daemon):
//   prunerd eval    --model PATH --data FILE [--seqlen T] [--device cuda:0] [--max-windows N]
//   prunerd oneshot --model PATH --method barber --init wanda --ratio 0.5 [--pattern 2:4]
//                   --calib FILE [--eval FILE] [--out DIR] [--device cuda:0] ...
// Progress goes to stderr (one rewritten line on a terminal, plain lines otherwise), the
// result to stdout: the perplexity and a JSON report for eval, the job report for oneshot.
// SIGINT cancels at the next layer boundary. Exit codes: 0 success, 1 failure, 2 bad
// arguments or input, 130 cancelled.
//
// Thread-safety: each call runs on the calling thread; they install a SIGINT handler.
#pragma once

#include <string>
#include <vector>

namespace prunerd {

int RunEvalCommand(const std::vector<std::string>& args);
int RunOneshotCommand(const std::vector<std::string>& args);

}  // namespace prunerd
