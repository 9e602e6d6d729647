// File: event_hub.h
//
// Live fan-out of job events to WatchJob streams. The scheduler publishes each event after
// the store has committed it; watchers subscribe to one job and wait for events past the last
// sequence number they sent. The hub keeps, per job, only the events published while someone
// is subscribed: replay of older events comes from the store, and a watcher that misses a
// sequence number (it subscribed between commit and publish) fills the gap from the store.
//
//   auto sub = hub.Subscribe("j-1");
//   std::vector<v1::JobEvent> events;
//   switch (sub->Wait(/*after_seq=*/7, absl::Now() + absl::Seconds(1), &events)) { ... }
//
// Shutdown() wakes every watcher with kShutdown: the daemon is stopping and streams should end
// with a final event.
//
// Thread-safety: all methods are safe to call from any thread. Events of one job must be
// published in sequence order (the job's writer is serialized by the store).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prunerd/v1/job.pb.h"

namespace prunerd {

class JobEventHub {
 public:
  enum class WaitResult { kEvents, kTimeout, kShutdown };

  class Subscription {
   public:
    // Waits until an event with seq > after_seq has been published, the hub shuts down, or
    // `deadline`. Appends the events with seq > after_seq, in order, to *out.
    WaitResult Wait(int64_t after_seq, absl::Time deadline, std::vector<v1::JobEvent>* out);

   private:
    friend class JobEventHub;
    struct Channel;
    explicit Subscription(std::shared_ptr<Channel> channel) : channel_(std::move(channel)) {}
    std::shared_ptr<Channel> channel_;
  };

  JobEventHub() = default;
  JobEventHub(const JobEventHub&) = delete;
  JobEventHub& operator=(const JobEventHub&) = delete;

  std::unique_ptr<Subscription> Subscribe(const std::string& job_id);
  // Delivers to the job's current subscribers; dropped when there are none.
  void Publish(const v1::JobEvent& event);
  void Shutdown();
  bool shutting_down() const;
  // Subscriptions alive now (all jobs), for tests and metrics.
  int subscribers() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::weak_ptr<Subscription::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace prunerd
