// File: artifact_store.h
//
// Per-job artifact directories under the data directory:
//
//   <data_dir>/jobs/<job id>/model/...        the pruned model (Hugging Face directory)
//                            report.json      the engine's report
//                            events.jsonl     every event of the job, one JSON object a line
//
// Everything is written under a temporary name, fsynced, then renamed into place, so a crash
// never leaves a partial artifact under its final name: the engine writes the model into
// "model.tmp", which is fsynced file by file and renamed to "model" only after the run
// succeeded; report.json and events.jsonl go through WriteFileAtomically. Temp leftovers from
// a crash are removed when the job's next attempt starts.
//
//   ArtifactStore artifacts("/var/lib/prunerd", FileSystem::Default());
//   std::string out = artifacts.PrepareModelDir(id).value();   // give it to the engine
//   ... engine writes out ...
//   RETURN_IF_ERROR(artifacts.CommitModel(id, out));
//   RETURN_IF_ERROR(artifacts.WriteReport(id, report));
//   ASSIGN_OR_RETURN(auto list, artifacts.List(id));          // names, sizes, sha256
//
// Thread-safety: safe to call concurrently for different jobs; calls for one job are made by
// the worker running it (writes) and by GetArtifact (reads of committed files only).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prunerd/v1/job.pb.h"
#include "server/file_system.h"

namespace prunerd {

inline constexpr char kReportArtifact[] = "report.json";
inline constexpr char kEventsArtifact[] = "events.jsonl";
inline constexpr char kModelArtifactDir[] = "model";

class ArtifactStore {
 public:
  ArtifactStore(std::string data_dir, FileSystem* fs);

  std::string JobDir(const std::string& job_id) const;

  // Creates the job directory, removes leftovers of an earlier attempt (model.tmp, *.tmp,
  // an uncommitted model) and returns the empty temp path the engine should write the model
  // to (it does not exist yet).
  absl::StatusOr<std::string> PrepareModelDir(const std::string& job_id);
  // fsyncs every file of `written_dir` (the engine's output) and renames it to <job>/model.
  absl::Status CommitModel(const std::string& job_id, const std::string& written_dir);
  // report.json: the report as JSON (core/api/proto_json.h), indented.
  absl::Status WriteReport(const std::string& job_id, const v1::PruneReport& report);
  absl::Status WriteEventLog(const std::string& job_id, const std::vector<v1::JobEvent>& events);
  // Every committed artifact, sorted by name, hashed now (sha256 of the whole file).
  absl::StatusOr<std::vector<v1::Artifact>> List(const std::string& job_id);
  // One committed artifact's size and sha256.
  absl::StatusOr<v1::Artifact> Describe(const std::string& job_id, const std::string& name);
  // Removes temp leftovers (used when a job fails or is interrupted).
  absl::Status DiscardTemp(const std::string& job_id);
  // The file path of a committed artifact. InvalidArgument for a malformed name ("..",
  // absolute, a temp name); NotFound when absent.
  absl::StatusOr<std::string> PathOf(const std::string& job_id, const std::string& name) const;
  absl::Status Remove(const std::string& job_id);
  // Job ids that have a directory (for orphan cleanup).
  std::vector<std::string> JobIdsOnDisk() const;

 private:
  std::string data_dir_;
  FileSystem* fs_;
};

// "j-0193a4c2f1d0-5e3b9a1c"-style ids only: [A-Za-z0-9_-], 1..64.
bool IsValidJobId(const std::string& id);

}  // namespace prunerd
