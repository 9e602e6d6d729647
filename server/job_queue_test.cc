#include "server/job_queue.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::ElementsAre;

TEST(JobQueueTest, PriorityThenSubmissionOrder) {
  JobQueue q;
  q.Push({.id = "a", .priority = 0, .seq = 1});
  q.Push({.id = "b", .priority = 5, .seq = 2});
  q.Push({.id = "c", .priority = 0, .seq = 3});
  q.Push({.id = "d", .priority = 5, .seq = 4});
  q.Push({.id = "e", .priority = -3, .seq = 0});
  EXPECT_THAT(q.Ids(), ElementsAre("b", "d", "a", "c", "e"));
  EXPECT_EQ(q.Pop()->id, "b");
  EXPECT_EQ(q.Pop()->id, "d");
  EXPECT_EQ(q.Pop()->id, "a");
  EXPECT_EQ(q.size(), 2u);
}

TEST(JobQueueTest, RemoveAndDuplicates) {
  JobQueue q;
  q.Push({.id = "a", .priority = 1, .seq = 1});
  q.Push({.id = "a", .priority = 9, .seq = 7});  // ignored: already queued
  q.Push({.id = "b", .priority = 1, .seq = 2});
  EXPECT_EQ(q.size(), 2u);
  EXPECT_TRUE(q.Contains("a"));
  EXPECT_TRUE(q.Remove("a"));
  EXPECT_FALSE(q.Remove("a"));
  EXPECT_FALSE(q.Contains("a"));
  EXPECT_EQ(q.Pop()->id, "b");
  EXPECT_FALSE(q.Pop().has_value());
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace prunerd
