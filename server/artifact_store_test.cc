#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/api/proto_json.h"
#include "core/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/artifact_store.h"

namespace prunerd {
namespace {

// The real filesystem, with one operation failing on demand (fault injection).
class FaultyFileSystem : public FileSystem {
 public:
  std::string fail_op;  // "sync", "syncdir", "rename", "write"
  FileSystem* base = FileSystem::Default();
  std::vector<std::string> synced;

  absl::Status CreateDirs(const std::string& p) override { return base->CreateDirs(p); }
  absl::Status WriteFile(const std::string& p, absl::string_view d) override {
    if (fail_op == "write") return absl::ResourceExhaustedError("disk full (injected)");
    return base->WriteFile(p, d);
  }
  absl::StatusOr<std::string> ReadFile(const std::string& p) override { return base->ReadFile(p); }
  absl::Status SyncFile(const std::string& p) override {
    if (fail_op == "sync") return absl::InternalError("fsync failed (injected)");
    synced.push_back(p);
    return base->SyncFile(p);
  }
  absl::Status SyncDir(const std::string& p) override {
    if (fail_op == "syncdir") return absl::InternalError("fsync dir failed (injected)");
    synced.push_back(p + "/");
    return base->SyncDir(p);
  }
  absl::Status Rename(const std::string& a, const std::string& b) override {
    if (fail_op == "rename") return absl::InternalError("rename failed (injected)");
    return base->Rename(a, b);
  }
  absl::Status RemoveAll(const std::string& p) override { return base->RemoveAll(p); }
  bool Exists(const std::string& p) override { return base->Exists(p); }
  bool IsDirectory(const std::string& p) override { return base->IsDirectory(p); }
  absl::StatusOr<std::vector<FileEntry>> ListFiles(const std::string& d) override {
    return base->ListFiles(d);
  }
};

std::string ShellSha256(const std::string& path) {
  std::string out;
  FILE* p = popen(("sha256sum '" + path + "'").c_str(), "r");
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out.substr(0, 64);
}

TEST(WriteFileAtomicallyTest, FailureKeepsTheOldContentAndNoTempFile) {
  TempDir dir;
  FaultyFileSystem fs;
  const std::string path = dir.path() + "/report.json";
  ASSERT_TRUE(WriteFileAtomically(&fs, path, "old").ok());
  // The file and its directory were fsynced before/after the rename.
  EXPECT_THAT(fs.synced, ::testing::ElementsAre(path + ".tmp", dir.path() + "/"));
  for (const char* op : {"write", "sync", "rename"}) {
    fs.fail_op = op;
    EXPECT_FALSE(WriteFileAtomically(&fs, path, "new").ok()) << op;
    EXPECT_EQ(*FileSystem::Default()->ReadFile(path), "old") << op;
    EXPECT_FALSE(FileSystem::Default()->Exists(path + ".tmp")) << op;
  }
}

TEST(ArtifactStoreTest, CommitListAndHash) {
  TempDir dir;
  FaultyFileSystem fs;
  ArtifactStore store(dir.path(), &fs);
  auto tmp = store.PrepareModelDir("j-1");
  ASSERT_TRUE(tmp.ok()) << tmp.status();
  EXPECT_FALSE(fs.Exists(*tmp));
  fs.CreateDirs(*tmp + "/sub").IgnoreError();
  fs.WriteFile(*tmp + "/config.json", "{}").IgnoreError();
  fs.WriteFile(*tmp + "/sub/w.bin", std::string(5000, 'w')).IgnoreError();
  fs.synced.clear();
  ASSERT_TRUE(store.CommitModel("j-1", *tmp).ok());
  // Every file, then every directory, was fsynced before the rename.
  EXPECT_THAT(fs.synced, ::testing::IsSupersetOf({*tmp + "/config.json", *tmp + "/sub/w.bin",
                                                  *tmp + "/", *tmp + "/sub/"}));
  ASSERT_TRUE(store.WriteReport("j-1", v1::PruneReport()).ok());
  auto list = store.List("j-1");
  ASSERT_TRUE(list.ok());
  std::vector<std::string> names;
  for (const auto& a : *list) {
    names.push_back(a.name());
    const std::string path = store.JobDir("j-1") + "/" + a.name();
    EXPECT_EQ(a.sha256(), ShellSha256(path)) << a.name();
  }
  EXPECT_THAT(names, ::testing::ElementsAre("model/config.json", "model/sub/w.bin", "report.json"));
  EXPECT_EQ((*list)[1].size_bytes(), 5000);
  auto d = store.Describe("j-1", "report.json");
  ASSERT_TRUE(d.ok());
  // report.json is the report as the API's JSON, every field shown.
  const std::string want = ProtoToJson(v1::PruneReport(), {.pretty = true, .with_defaults = true});
  EXPECT_EQ(d->size_bytes(), static_cast<int64_t>(want.size() + 1));
  EXPECT_THAT(want, ::testing::HasSubstr("\"sparsity\": 0"));
}

TEST(ArtifactStoreTest, FailedCommitLeavesNoModelUnderTheFinalName) {
  TempDir dir;
  FaultyFileSystem fs;
  ArtifactStore store(dir.path(), &fs);
  auto tmp = store.PrepareModelDir("j-2");
  ASSERT_TRUE(tmp.ok());
  fs.CreateDirs(*tmp).IgnoreError();
  fs.WriteFile(*tmp + "/config.json", "{}").IgnoreError();
  for (const char* op : {"sync", "rename"}) {
    fs.fail_op = op;
    EXPECT_FALSE(store.CommitModel("j-2", *tmp).ok());
    EXPECT_FALSE(fs.Exists(store.JobDir("j-2") + "/model")) << op;
  }
  auto list = store.List("j-2");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());  // temp files are never artifacts
  fs.fail_op = "";
  ASSERT_TRUE(store.DiscardTemp("j-2").ok());
  EXPECT_FALSE(fs.Exists(*tmp));
  // A fresh attempt removes leftovers (and a stale committed model) before starting.
  fs.CreateDirs(store.JobDir("j-2") + "/model").IgnoreError();
  fs.WriteFile(store.JobDir("j-2") + "/report.json.tmp", "x").IgnoreError();
  ASSERT_TRUE(store.PrepareModelDir("j-2").ok());
  EXPECT_FALSE(fs.Exists(store.JobDir("j-2") + "/model"));
  EXPECT_FALSE(fs.Exists(store.JobDir("j-2") + "/report.json.tmp"));
}

TEST(ArtifactStoreTest, PathOfConfinesNames) {
  TempDir dir;
  ArtifactStore store(dir.path(), FileSystem::Default());
  ASSERT_TRUE(store.WriteReport("j-3", v1::PruneReport()).ok());
  dir.Write("secret", "s");
  EXPECT_TRUE(store.PathOf("j-3", "report.json").ok());
  for (const char* bad :
       {"../../secret", "/etc/passwd", "model/../../x", "", "a//b", "./report.json"}) {
    EXPECT_EQ(store.PathOf("j-3", bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(store.PathOf("j-3", "nope.json").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.PathOf("j-3", "report.json.tmp").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(IsValidJobId("../x"));
  EXPECT_TRUE(IsValidJobId("j-0193a4c2f1d0-5e3b9a1c"));
}

}  // namespace
}  // namespace prunerd
