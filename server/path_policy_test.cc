#include "server/path_policy.h"

#include <unistd.h>

#include "core/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

class PathPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.Mkdir("models");
    dir_.Write("models/m.bin", "x");
    dir_.Write("models/hf/config.json", "{}");
    dir_.Write("models/with space.bin", "x");
    dir_.Write("secret/passwd", "s");
    dir_.Mkdir("models2");
    dir_.Write("models2/other.bin", "y");
    // A link inside the root to a file inside it (fine) and to a file outside (escape).
    ASSERT_EQ(::symlink((root_ + "/m.bin").c_str(), (root_ + "/alias.bin").c_str()), 0);
    ASSERT_EQ(::symlink((dir_.path() + "/secret/passwd").c_str(), (root_ + "/evil").c_str()), 0);
    ASSERT_EQ(::symlink((dir_.path() + "/secret").c_str(), (root_ + "/evildir").c_str()), 0);
    ASSERT_EQ(::symlink("/nonexistent/x", (root_ + "/dangling").c_str()), 0);
    auto p = PathPolicy::Create({root_, dir_.path() + "/models2"});
    ASSERT_TRUE(p.ok()) << p.status();
    policy_ = *std::move(p);
  }

  absl::StatusCode Code(const std::string& in) {
    return policy_.Resolve("spec.model", in).status().code();
  }

  TempDir dir_;
  std::string root_;
  PathPolicy policy_;
};

TEST_F(PathPolicyTest, AcceptsPathsAndUrisInsideTheRoots) {
  auto a = policy_.Resolve("spec.model", root_ + "/m.bin");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, root_ + "/m.bin");
  EXPECT_EQ(*policy_.Resolve("f", "file://" + root_ + "/m.bin"), root_ + "/m.bin");
  EXPECT_EQ(*policy_.Resolve("f", "file://localhost" + root_ + "/hf"), root_ + "/hf");
  EXPECT_EQ(*policy_.Resolve("f", "file://" + root_ + "/with%20space.bin"),
            root_ + "/with space.bin");
  // Relative: looked up below each root in turn.
  EXPECT_EQ(*policy_.Resolve("f", "m.bin"), root_ + "/m.bin");
  EXPECT_EQ(*policy_.Resolve("f", "other.bin"), dir_.path() + "/models2/other.bin");
  EXPECT_EQ(*policy_.Resolve("f", root_ + "//./hf/"), root_ + "/hf");
  // A link that stays inside resolves to its target.
  EXPECT_EQ(*policy_.Resolve("f", "alias.bin"), root_ + "/m.bin");
}

TEST_F(PathPolicyTest, RejectsEscapesWithInvalidArgumentNamingTheField) {
  for (const std::string& bad :
       {std::string("/etc/passwd"), dir_.path() + "/secret/passwd", root_ + "/../secret/passwd",
        std::string("../secret/passwd"), std::string("hf/../../secret/passwd"),
        std::string("file:///etc/passwd"), root_ + "/evil", root_ + "/evildir/passwd",
        std::string("file://" + root_ + "/%2e%2e/secret/passwd"),
        std::string("http://example.com/m.bin"), std::string("file://otherhost/m.bin"),
        root_ + "x/m.bin", std::string(""), std::string("file://" + root_ + "/bad%zz")}) {
    auto r = policy_.Resolve("spec.model", bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad << " -> " << r.status();
    EXPECT_EQ(std::string(r.status().message()).rfind("spec.model: ", 0), 0u) << r.status();
  }
  // The outside path is rejected before the filesystem is asked: same answer whether or not
  // the file exists.
  EXPECT_EQ(Code("/etc/passwd"), Code("/etc/definitely-not-here"));
}

TEST_F(PathPolicyTest, MissingInsideTheRootsIsNotFound) {
  EXPECT_EQ(Code(root_ + "/missing.bin"), absl::StatusCode::kNotFound);
  EXPECT_EQ(Code("missing.bin"), absl::StatusCode::kNotFound);
  EXPECT_EQ(Code("dangling"), absl::StatusCode::kNotFound);
}

TEST(PathPolicyCreateTest, RootsMustBeDirectories) {
  TempDir dir;
  dir.Write("f", "x");
  EXPECT_FALSE(PathPolicy::Create({dir.path() + "/f"}).ok());
  EXPECT_FALSE(PathPolicy::Create({dir.path() + "/nope"}).ok());
  auto empty = PathPolicy::Create({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->Resolve("spec.model", "/x").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PathHelpersTest, WithinIsComponentWise) {
  EXPECT_TRUE(IsWithin("/a/b", "/a/b"));
  EXPECT_TRUE(IsWithin("/a/b/c", "/a/b"));
  EXPECT_FALSE(IsWithin("/a/bc", "/a/b"));
  EXPECT_TRUE(IsWithin("/x", "/"));
  EXPECT_EQ(NormalizePath("/a//b/./c/"), "/a/b/c");
  EXPECT_EQ(NormalizePath("a/./b"), "a/b");
  EXPECT_EQ(*PathFromUri("file:///a%2Fb"), "/a/b");
  EXPECT_EQ(*PathFromUri("/plain"), "/plain");
}

}  // namespace
}  // namespace prunerd
