// File: auth.h
//
// Bearer-token authentication and role-based authorization.
//
// Token file (--token-file): one token per line, "#" comments and blank lines ignored:
//
//   # token                              roles               name
//   3f9c2a...e1                          submit              ci-runner
//   77ab01...90                          admin               alice
//   c0ffee...42                          read                grafana
//
// Roles are cumulative: read (GetJob, ListJobs, WatchJob, GetArtifact, GetServerInfo) <
// submit (also SubmitJob, CancelJob of the caller's own jobs) < admin (CancelJob of anyone's
// job). Several roles may be given comma-separated; the highest counts. Tokens must be at
// least 16 characters; names default to "token-<line>". The file must not be readable by
// others when --strict-token-file-mode is on (default).
//
// Checks: the "authorization: Bearer <token>" metadata is hashed with SHA-256 and compared
// against every known token's hash with a constant-time comparison (no early exit, every
// entry visited), so timing reveals neither a prefix nor which entry matched.
//   no token / malformed header / unknown token -> UNAUTHENTICATED
//   known token without the role                -> PERMISSION_DENIED
// With no token file, authentication is off and every caller is an anonymous admin.
//
//   ASSIGN_OR_RETURN(auto auth, TokenAuthenticator::FromFile("/etc/prunerd/tokens"));
//   ASSIGN_OR_RETURN(Principal who, auth->Authenticate(header_value, Role::kSubmit));
//
// Thread-safety: immutable after construction; safe to share.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace prunerd {

enum class Role { kRead = 1, kSubmit = 2, kAdmin = 3 };
const char* RoleName(Role r);

struct Principal {
  std::string name;  // "" when authentication is off
  Role role = Role::kAdmin;
  bool Has(Role r) const { return static_cast<int>(role) >= static_cast<int>(r); }
};

class TokenAuthenticator {
 public:
  struct Entry {
    std::string token_sha256;  // raw 32 bytes
    Role role;
    std::string name;
  };

  // Parses the token file's text. InvalidArgument naming the line on errors.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> Parse(absl::string_view text);
  // Reads and parses the file; with `strict_mode`, refuses a file readable by group/others.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromFile(const std::string& path,
                                                                      bool strict_mode);
  // Authentication off: everyone is an anonymous admin.
  static std::unique_ptr<TokenAuthenticator> Disabled();

  bool enabled() const { return enabled_; }

  // `authorization`: the value of the "authorization" metadata ("" when absent).
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization, Role needed) const;

 private:
  TokenAuthenticator() = default;
  bool enabled_ = true;
  std::vector<Entry> entries_;
};

// Constant-time equality of two equal-length byte strings (false on length mismatch).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace prunerd
