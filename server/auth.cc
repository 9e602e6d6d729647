#include "server/auth.h"

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/io/sha256.h"
#include "server/file_system.h"

namespace prunerd {

const char* RoleName(Role r) {
  switch (r) {
    case Role::kRead:
      return "read";
    case Role::kSubmit:
      return "submit";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

std::unique_ptr<TokenAuthenticator> TokenAuthenticator::Disabled() {
  std::unique_ptr<TokenAuthenticator> a(new TokenAuthenticator);
  a->enabled_ = false;
  return a;
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::Parse(
    absl::string_view text) {
  std::unique_ptr<TokenAuthenticator> a(new TokenAuthenticator);
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() < 2 || fields.size() > 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file line ", line_no, ": expected \"<token> <roles> [name]\""));
    }
    if (fields[0].size() < 16) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file line ", line_no, ": token shorter than 16 characters"));
    }
    Role role = Role::kRead;
    bool any = false;
    for (absl::string_view r : absl::StrSplit(fields[1], ',', absl::SkipEmpty())) {
      Role parsed;
      if (r == "read") {
        parsed = Role::kRead;
      } else if (r == "submit") {
        parsed = Role::kSubmit;
      } else if (r == "admin") {
        parsed = Role::kAdmin;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "token file line ", line_no, ": unknown role \"", r, "\" (read, submit, admin)"));
      }
      if (!any || static_cast<int>(parsed) > static_cast<int>(role)) role = parsed;
      any = true;
    }
    if (!any) {
      return absl::InvalidArgumentError(absl::StrCat("token file line ", line_no, ": no role"));
    }
    Entry e;
    Sha256 h;
    h.Update(fields[0]);
    e.token_sha256 = h.Digest();
    e.role = role;
    e.name = fields.size() == 3 ? std::string(fields[2]) : absl::StrCat("token-", line_no);
    a->entries_.push_back(std::move(e));
  }
  if (a->entries_.empty()) {
    return absl::InvalidArgumentError("token file holds no tokens");
  }
  return a;
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromFile(
    const std::string& path, bool strict_mode) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, ": cannot stat"));
  }
  if (strict_mode && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, " is accessible by group/others (chmod 600)"));
  }
  absl::StatusOr<std::string> text = FileSystem::Default()->ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, ": ", text.status().message()));
  }
  absl::StatusOr<std::unique_ptr<TokenAuthenticator>> a = Parse(*text);
  if (!a.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", a.status().message()));
  }
  return a;
}

absl::StatusOr<Principal> TokenAuthenticator::Authenticate(absl::string_view authorization,
                                                           Role needed) const {
  if (!enabled_) return Principal{.name = "", .role = Role::kAdmin};
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing credentials: send \"authorization: Bearer <token>\"");
  }
  absl::string_view token = authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    return absl::UnauthenticatedError(
        "malformed authorization header (expected \"Bearer <token>\")");
  }
  token = absl::StripAsciiWhitespace(token);
  Sha256 h;
  h.Update(token);
  const std::string digest = h.Digest();
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    // Visit every entry; no early exit.
    const bool eq = ConstantTimeEquals(digest, e.token_sha256);
    if (eq && match == nullptr) match = &e;
  }
  if (match == nullptr) return absl::UnauthenticatedError("invalid token");
  Principal p{.name = match->name, .role = match->role};
  if (!p.Has(needed)) {
    return absl::PermissionDeniedError(absl::StrCat("token \"", p.name, "\" has role ",
                                                    RoleName(p.role), "; this call needs ",
                                                    RoleName(needed)));
  }
  return p;
}

}  // namespace prunerd
