#include "server/dataset_registry.h"

#include <unistd.h>

#include "core/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DatasetRegistryTest, FilesAndManifest) {
  TempDir dir;
  dir.Write("data/wikitext2-test.raw", "text");
  dir.Write("data/c4.jsonl", "{\"text\": \"a\"}\n");
  dir.Write("data/.hidden.txt", "x");
  dir.Write("elsewhere/tiny.txt", "t");
  dir.Write("data/datasets.json",
            "{\"tiny\": \"" + dir.path() + "/elsewhere/tiny.txt\", \"rel\": \"c4.jsonl\"}");
  DatasetRegistry reg(dir.path() + "/data");
  EXPECT_THAT(reg.Names(), ElementsAre("c4", "rel", "tiny", "wikitext2-test"));
  EXPECT_EQ(*reg.Resolve("f", "tiny"), dir.path() + "/elsewhere/tiny.txt");
  EXPECT_EQ(*reg.Resolve("f", "rel"), dir.path() + "/data/c4.jsonl");
  EXPECT_EQ(*reg.Resolve("f", "wikitext2-test"), dir.path() + "/data/wikitext2-test.raw");
  auto missing = reg.Resolve("spec.calibration.dataset", "nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("spec.calibration.dataset: unknown dataset \"nope\" (registered: c4, rel"));
  EXPECT_EQ(reg.Resolve("f", "../etc/passwd").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.Resolve("f", "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DatasetRegistryTest, BadManifestAndEmptyDir) {
  TempDir dir;
  dir.Write("datasets.json", "[1, 2]");
  DatasetRegistry reg(dir.path());
  EXPECT_EQ(reg.List().status().code(), absl::StatusCode::kInvalidArgument);
  DatasetRegistry none("");
  EXPECT_TRUE(none.Names().empty());
  EXPECT_EQ(none.Resolve("f", "x").status().code(), absl::StatusCode::kNotFound);
}

TEST(DatasetRegistryTest, RegisteredButMissingFile) {
  TempDir dir;
  dir.Write("datasets.json", "{\"gone\": \"/nonexistent/file.txt\"}");
  DatasetRegistry reg(dir.path());
  auto r = reg.Resolve("f", "gone");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("file is missing"));
}

}  // namespace
}  // namespace prunerd
