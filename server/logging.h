// File: logging.h
//
// The daemon's log: one line per message on stderr, with a UTC timestamp and a level,
// written with a single write(2) so lines of concurrent threads never interleave. (Debian's
// Abseil 20220623 predates absl/log.)
//
//   LogInfo(absl::StrCat("job ", id, " started on ", device));
//   LogWarning("no token file: authentication is off");
//
// Thread-safety: safe from any thread.
#pragma once

#include "absl/strings/string_view.h"

namespace prunerd {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void Log(LogLevel level, absl::string_view message);
inline void LogInfo(absl::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(absl::string_view m) { Log(LogLevel::kError, m); }
// Messages below `level` are dropped (default kInfo).
void SetLogLevel(LogLevel level);

}  // namespace prunerd
