#include "server/spec_resolver.h"

#include <sys/stat.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/str_cat.h"
#include "core/api/job_spec.h"
#include "core/common/status_macros.h"
#include "core/io/sha256.h"

namespace prunerd {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

absl::Status SpecResolver::ResolveData(const std::string& field, v1::DataSource* d) const {
  if (d->source_case() == v1::DataSource::kDataset) {
    ASSIGN_OR_RETURN(std::string path,
                     datasets_->Resolve(absl::StrCat(field, ".dataset"), d->dataset()));
    d->set_uri(path);
    return absl::OkStatus();
  }
  const std::string f = absl::StrCat(field, ".uri");
  ASSIGN_OR_RETURN(std::string path, roots_->Resolve(f, d->uri()));
  if (!IsRegularFile(path)) return FieldError(f, absl::StrCat("not a regular file: ", d->uri()));
  d->set_uri(path);
  return absl::OkStatus();
}

absl::StatusOr<v1::JobSpec> SpecResolver::Resolve(const v1::JobSpec& spec) const {
  // Numbers and names first (cheap, and the most common mistakes), every one of them; files
  // after.
  RETURN_IF_ERROR(ViolationsToStatus(SpecViolations(spec), "spec."));
  v1::JobSpec out = spec;
  ASSIGN_OR_RETURN(std::string model, roots_->Resolve("spec.model", spec.model()));
  if (IsDirectory(model)) {
    if (!IsRegularFile(absl::StrCat(model, "/config.json"))) {
      return FieldError(
          "spec.model",
          absl::StrCat("directory without config.json (not a Hugging Face model): ", spec.model()));
    }
  } else if (!IsRegularFile(model)) {
    return FieldError("spec.model", absl::StrCat("not a file or directory: ", spec.model()));
  }
  out.set_model(model);
  if (!spec.tokenizer().empty()) {
    ASSIGN_OR_RETURN(std::string tokenizer, roots_->Resolve("spec.tokenizer", spec.tokenizer()));
    if (!IsRegularFile(tokenizer)) {
      return FieldError("spec.tokenizer", absl::StrCat("not a regular file: ", spec.tokenizer()));
    }
    out.set_tokenizer(tokenizer);
  }
  RETURN_IF_ERROR(ResolveData("spec.calibration", out.mutable_calibration()));
  if (out.has_evaluation())
    RETURN_IF_ERROR(ResolveData("spec.evaluation", out.mutable_evaluation()));
  return out;
}

std::string SpecHash(const v1::JobSpec& spec) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream sos(&bytes);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&cos);
  }
  return Sha256Hex(bytes);
}

}  // namespace prunerd
