// File: proto_time.h
//
// absl::Time <-> google.protobuf.Timestamp, for the job records and events.
//
//   SetTimestamp(job.mutable_create_time(), clock->Now());
//   absl::Time t = FromTimestamp(job.create_time());
//
// Thread-safety: pure functions.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace prunerd {

inline void SetTimestamp(google::protobuf::Timestamp* ts, absl::Time t) {
  const int64_t ns = absl::ToUnixNanos(t);
  int64_t sec = ns / 1'000'000'000;
  int64_t nanos = ns % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    sec -= 1;
  }
  ts->set_seconds(sec);
  ts->set_nanos(static_cast<int32_t>(nanos));
}

inline absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

}  // namespace prunerd
