// File: proto_json.h
//
// The one JSON form of the API's messages, used for report.json, the event log, `prunectl
// --output json` and spec files: protobuf's canonical JSON mapping with the proto field names
// (snake_case, "job_id" not "jobId"), enum values by name, and 64-bit integers as JSON numbers
// where they fit a double exactly (|v| <= 2^53; the canonical mapping writes them as strings,
// which scripts trip over). Parsing accepts both forms and ignores no field: an unknown field is
// an error naming it.
//
//   std::string text = ProtoToJson(report, {.pretty = true});
//   ASSIGN_OR_RETURN(v1::PruneReport back, JsonToProto<v1::PruneReport>(text));
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace prunerd {

struct JsonOptions {
  bool pretty = false;  // indented, several lines; otherwise one line
  // Print fields that hold their default value (zeros, empty strings) too.
  bool with_defaults = false;
};

std::string ProtoToJson(const google::protobuf::Message& message, const JsonOptions& options = {});
absl::Status JsonToProto(absl::string_view json, google::protobuf::Message* message);

template <typename M>
absl::StatusOr<M> JsonToProto(absl::string_view json) {
  M m;
  absl::Status s = JsonToProto(json, &m);
  if (!s.ok()) return s;
  return m;
}

}  // namespace prunerd
