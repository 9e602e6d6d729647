// File: job_format.h
//
// How prunectl shows jobs and events: JSON (protobuf's canonical JSON with the proto field
// names, for scripts), a human summary, one plain line per event (logs, CI), and a one-line
// progress bar rewritten in place on a terminal.
//
//   std::cerr << "\r" << ProgressBarLine(job.state(), job.progress(), 30);
//   std::cout << EventLine(event) << "\n";
//   std::cout << ToJson(job) << "\n";
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include <google/protobuf/message.h>

#include "core/api/job_state.h"
#include "prunerd/v1/service.pb.h"

namespace prunerd {

// The API's JSON (core/api/proto_json.h) on one line.
std::string ToJson(const google::protobuf::Message& message);
// 75 -> "1m15s", 3725 -> "1h02m", 9.4 -> "9s".
std::string HumanDuration(double seconds);
// "1.5 KiB", "3.2 GiB".
std::string HumanBytes(int64_t bytes);
// "[############--------]  60.0%  prune layer 3/5  ETA 1m05s  ppl 21.30 -> 23.10"
std::string ProgressBarLine(v1::JobState state, const v1::JobProgress& progress, int width);
// "2026-11-23T10:00:01Z  #7  running  prune 3/5  60.0%  ETA 65s  layer 3/5"
std::string EventLine(const v1::JobEvent& event);
// A multi-line summary of a job.
std::string JobSummary(const v1::Job& job);
// One line per job for `list`.
std::string JobListLine(const v1::Job& job);

}  // namespace prunerd
