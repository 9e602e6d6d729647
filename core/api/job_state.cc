#include "core/api/job_state.h"

#include "core/api/job_spec.h"

namespace prunerd {

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

bool IsAllowedTransition(v1::JobState from, v1::JobState to) {
  if (from == to) return from != v1::JOB_STATE_UNSPECIFIED;
  switch (from) {
    case v1::JOB_STATE_QUEUED:
      return to == v1::JOB_STATE_RUNNING || to == v1::JOB_STATE_CANCELLED ||
             to == v1::JOB_STATE_FAILED;
    case v1::JOB_STATE_RUNNING:
      return to == v1::JOB_STATE_QUEUED || IsTerminal(to);
    default:
      return false;  // terminal states end the job; UNSPECIFIED is never stored
  }
}

std::string StateName(v1::JobState s) { return EnumName(s); }

}  // namespace prunerd
