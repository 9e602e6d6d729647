#include "server/auth.h"

#include <sys/stat.h>

#include "core/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

constexpr char kTokens[] = R"(
# token                              roles          name
reader-token-0123456789             read           grafana
submitter-token-0123456789          submit         ci
admin-token-0123456789              read,admin     alice
anonymous-token-0123456789          submit
)";

TEST(TokenAuthenticatorTest, RolesAreCumulative) {
  auto auth = TokenAuthenticator::Parse(kTokens);
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto& a = **auth;
  EXPECT_TRUE(a.enabled());
  auto r = a.Authenticate("Bearer reader-token-0123456789", Role::kRead);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->name, "grafana");
  EXPECT_EQ(r->role, Role::kRead);
  auto denied = a.Authenticate("Bearer reader-token-0123456789", Role::kSubmit);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.status().message()), HasSubstr("needs submit"));
  auto ci = a.Authenticate("Bearer submitter-token-0123456789", Role::kSubmit);
  ASSERT_TRUE(ci.ok());
  EXPECT_TRUE(ci->Has(Role::kRead));
  EXPECT_FALSE(ci->Has(Role::kAdmin));
  auto admin = a.Authenticate("Bearer admin-token-0123456789", Role::kAdmin);
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->name, "alice");
  EXPECT_EQ(a.Authenticate("Bearer anonymous-token-0123456789", Role::kRead)->name, "token-6");
}

TEST(TokenAuthenticatorTest, BadOrMissingTokensAreUnauthenticated) {
  auto auth = TokenAuthenticator::Parse(kTokens);
  ASSERT_TRUE(auth.ok());
  for (const char* header : {"", "reader-token-0123456789", "Basic reader-token-0123456789",
                             "Bearer ", "Bearer reader-token-012345678",
                             "Bearer reader-token-01234567890", "Bearer READER-token-0123456789"}) {
    auto r = (*auth)->Authenticate(header, Role::kRead);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << "'" << header << "'";
  }
}

TEST(TokenAuthenticatorTest, DisabledLetsEveryoneInAsAdmin) {
  auto a = TokenAuthenticator::Disabled();
  EXPECT_FALSE(a->enabled());
  auto r = a->Authenticate("", Role::kAdmin);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->Has(Role::kAdmin));
}

TEST(TokenAuthenticatorTest, ParseErrorsNameTheLine) {
  EXPECT_THAT(std::string(TokenAuthenticator::Parse("short read\n").status().message()),
              HasSubstr("line 1: token shorter than 16"));
  EXPECT_THAT(
      std::string(
          TokenAuthenticator::Parse("# c\nlong-enough-token-123 root\n").status().message()),
      HasSubstr("line 2: unknown role \"root\""));
  EXPECT_FALSE(TokenAuthenticator::Parse("# nothing\n").ok());
  EXPECT_FALSE(TokenAuthenticator::Parse("a b c d\n").ok());
}

TEST(TokenAuthenticatorTest, StrictModeRefusesWorldReadableFiles) {
  TempDir dir;
  const std::string path = dir.Write("tokens", kTokens);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  EXPECT_EQ(TokenAuthenticator::FromFile(path, true).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(TokenAuthenticator::FromFile(path, false).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_TRUE(TokenAuthenticator::FromFile(path, true).ok());
  EXPECT_FALSE(TokenAuthenticator::FromFile(dir.path() + "/missing", false).ok());
}

TEST(ConstantTimeEqualsTest, ComparesBytes) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

}  // namespace
}  // namespace prunerd
