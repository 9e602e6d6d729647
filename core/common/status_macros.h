// File: status_macros.h
//
// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr (Debian's Abseil
// 20220623 does not ship absl/status/status_macros.h).
//
//   absl::StatusOr<int> ParseCount(std::string_view s);
//   absl::Status Use() {
//     ASSIGN_OR_RETURN(int n, ParseCount("3"));
//     RETURN_IF_ERROR(Check(n));
//     return absl::OkStatus();
//   }
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PRUNERD_CONCAT_INNER_(a, b) a##b
#define PRUNERD_CONCAT_(a, b) PRUNERD_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::absl::Status prunerd_status_ = (expr);        \
    if (!prunerd_status_.ok()) return prunerd_status_; \
  } while (0)

#define PRUNERD_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  PRUNERD_ASSIGN_OR_RETURN_IMPL_(PRUNERD_CONCAT_(prunerd_statusor_, __LINE__), lhs, expr)

namespace prunerd {

// Prefixes a non-OK status's message with context, keeping its code.
inline absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), std::string(context) + ": " + std::string(s.message()));
}

}  // namespace prunerd
