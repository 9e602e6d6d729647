#include "server/event_hub.h"

#include <thread>

#include "gtest/gtest.h"

namespace prunerd {
namespace {

v1::JobEvent Ev(const std::string& job, int64_t seq) {
  v1::JobEvent e;
  e.set_job_id(job);
  e.set_seq(seq);
  return e;
}

TEST(JobEventHubTest, DeliversOnlyNewerEventsOfTheSubscribedJob) {
  JobEventHub hub;
  hub.Publish(Ev("a", 1));  // nobody listening: dropped
  auto sub = hub.Subscribe("a");
  hub.Publish(Ev("b", 1));
  hub.Publish(Ev("a", 2));
  hub.Publish(Ev("a", 3));
  std::vector<v1::JobEvent> got;
  EXPECT_EQ(sub->Wait(2, absl::Now() + absl::Seconds(1), &got), JobEventHub::WaitResult::kEvents);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq(), 3);
  got.clear();
  EXPECT_EQ(sub->Wait(3, absl::Now() + absl::Milliseconds(20), &got),
            JobEventHub::WaitResult::kTimeout);
  EXPECT_TRUE(got.empty());
}

TEST(JobEventHubTest, WakesAWaiterAndTwoSubscribersSeeTheSameEvents) {
  JobEventHub hub;
  auto s1 = hub.Subscribe("a");
  auto s2 = hub.Subscribe("a");
  EXPECT_EQ(hub.subscribers(), 2);
  std::vector<v1::JobEvent> got1, got2;
  std::thread waiter([&] { s1->Wait(0, absl::Now() + absl::Seconds(10), &got1); });
  absl::SleepFor(absl::Milliseconds(20));
  hub.Publish(Ev("a", 1));
  waiter.join();
  s2->Wait(0, absl::Now() + absl::Seconds(1), &got2);
  ASSERT_EQ(got1.size(), 1u);
  ASSERT_EQ(got2.size(), 1u);
  EXPECT_EQ(got1[0].SerializeAsString(), got2[0].SerializeAsString());
  s1.reset();
  EXPECT_EQ(hub.subscribers(), 1);
}

TEST(JobEventHubTest, ShutdownWakesEveryWaiterAndLaterSubscribers) {
  JobEventHub hub;
  auto sub = hub.Subscribe("a");
  JobEventHub::WaitResult r = JobEventHub::WaitResult::kEvents;
  std::thread waiter([&] {
    std::vector<v1::JobEvent> got;
    r = sub->Wait(0, absl::Now() + absl::Seconds(30), &got);
  });
  absl::SleepFor(absl::Milliseconds(20));
  const absl::Time t = absl::Now();
  hub.Shutdown();
  waiter.join();
  EXPECT_EQ(r, JobEventHub::WaitResult::kShutdown);
  EXPECT_LT(absl::Now() - t, absl::Seconds(5));
  auto late = hub.Subscribe("b");
  std::vector<v1::JobEvent> got;
  EXPECT_EQ(late->Wait(0, absl::Now() + absl::Seconds(5), &got),
            JobEventHub::WaitResult::kShutdown);
}

}  // namespace
}  // namespace prunerd
