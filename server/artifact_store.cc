#include "server/artifact_store.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/api/proto_json.h"
#include "core/common/status_macros.h"
#include "core/io/sha256.h"
#include "server/path_policy.h"

namespace prunerd {
namespace {

constexpr char kModelTemp[] = "model.tmp";

bool IsTempName(absl::string_view rel) {
  const absl::string_view first = rel.substr(0, rel.find('/'));
  return absl::EndsWith(first, ".tmp") || absl::StrContains(first, ".partial");
}

}  // namespace

bool IsValidJobId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

ArtifactStore::ArtifactStore(std::string data_dir, FileSystem* fs)
    : data_dir_(std::move(data_dir)), fs_(fs) {}

std::string ArtifactStore::JobDir(const std::string& job_id) const {
  return absl::StrCat(data_dir_, "/jobs/", job_id);
}

absl::StatusOr<std::string> ArtifactStore::PrepareModelDir(const std::string& job_id) {
  if (!IsValidJobId(job_id)) return absl::InvalidArgumentError("bad job id");
  const std::string dir = JobDir(job_id);
  RETURN_IF_ERROR(fs_->CreateDirs(dir));
  RETURN_IF_ERROR(DiscardTemp(job_id));
  // A model committed by an attempt that then failed to finish its bookkeeping (crash between
  // rename and the terminal transition) is stale too: this attempt writes a fresh one.
  RETURN_IF_ERROR(fs_->RemoveAll(absl::StrCat(dir, "/", kModelArtifactDir)));
  return absl::StrCat(dir, "/", kModelTemp);
}

absl::Status ArtifactStore::CommitModel(const std::string& job_id, const std::string& written_dir) {
  const std::string dir = JobDir(job_id);
  if (!fs_->IsDirectory(written_dir)) {
    return absl::InternalError(
        absl::StrCat("the engine reported success but wrote no model at ", written_dir));
  }
  RETURN_IF_ERROR(SyncTree(fs_, written_dir));
  const std::string final_dir = absl::StrCat(dir, "/", kModelArtifactDir);
  RETURN_IF_ERROR(fs_->RemoveAll(final_dir));
  RETURN_IF_ERROR(fs_->Rename(written_dir, final_dir));
  return fs_->SyncDir(dir);
}

absl::Status ArtifactStore::WriteReport(const std::string& job_id, const v1::PruneReport& report) {
  RETURN_IF_ERROR(fs_->CreateDirs(JobDir(job_id)));
  return WriteFileAtomically(fs_, absl::StrCat(JobDir(job_id), "/", kReportArtifact),
                             ProtoToJson(report, {.pretty = true, .with_defaults = true}) + "\n");
}

absl::Status ArtifactStore::WriteEventLog(const std::string& job_id,
                                          const std::vector<v1::JobEvent>& events) {
  std::string text;
  for (const v1::JobEvent& ev : events) absl::StrAppend(&text, ProtoToJson(ev), "\n");
  RETURN_IF_ERROR(fs_->CreateDirs(JobDir(job_id)));
  return WriteFileAtomically(fs_, absl::StrCat(JobDir(job_id), "/", kEventsArtifact), text);
}

absl::StatusOr<std::vector<v1::Artifact>> ArtifactStore::List(const std::string& job_id) {
  const std::string dir = JobDir(job_id);
  std::vector<v1::Artifact> out;
  if (!fs_->IsDirectory(dir)) return out;
  ASSIGN_OR_RETURN(std::vector<FileEntry> files, fs_->ListFiles(dir));
  for (const FileEntry& f : files) {
    if (IsTempName(f.relative_path)) continue;
    v1::Artifact a;
    a.set_name(f.relative_path);
    a.set_size_bytes(f.size);
    ASSIGN_OR_RETURN(std::string hex, Sha256File(absl::StrCat(dir, "/", f.relative_path)));
    a.set_sha256(hex);
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<v1::Artifact> ArtifactStore::Describe(const std::string& job_id,
                                                     const std::string& name) {
  ASSIGN_OR_RETURN(std::string path, PathOf(job_id, name));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return absl::NotFoundError(absl::StrCat(path, " vanished"));
  v1::Artifact a;
  a.set_name(name);
  a.set_size_bytes(st.st_size);
  ASSIGN_OR_RETURN(std::string hex, Sha256File(path));
  a.set_sha256(hex);
  return a;
}

absl::Status ArtifactStore::DiscardTemp(const std::string& job_id) {
  const std::string dir = JobDir(job_id);
  if (!fs_->IsDirectory(dir)) return absl::OkStatus();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (IsTempName(name)) RETURN_IF_ERROR(fs_->RemoveAll(entry.path().string()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ArtifactStore::PathOf(const std::string& job_id,
                                                  const std::string& name) const {
  if (name.empty() || absl::StartsWith(name, "/") || name.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("name: bad artifact name \"", name, "\""));
  }
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("name: bad artifact name \"", name, "\""));
    }
  }
  if (IsTempName(name)) {
    return absl::NotFoundError(absl::StrCat("artifact ", name, " not found"));
  }
  const std::string path = absl::StrCat(JobDir(job_id), "/", name);
  char buf[PATH_MAX];
  char dirbuf[PATH_MAX];
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      ::realpath(path.c_str(), buf) == nullptr ||
      ::realpath(JobDir(job_id).c_str(), dirbuf) == nullptr || !IsWithin(buf, dirbuf)) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no artifact \"", name, "\""));
  }
  return path;
}

absl::Status ArtifactStore::Remove(const std::string& job_id) {
  if (!IsValidJobId(job_id)) return absl::InvalidArgumentError("bad job id");
  return fs_->RemoveAll(JobDir(job_id));
}

std::vector<std::string> ArtifactStore::JobIdsOnDisk() const {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir_ + "/jobs", ec)) {
    if (entry.is_directory(ec)) ids.push_back(entry.path().filename().string());
  }
  return ids;
}

}  // namespace prunerd
