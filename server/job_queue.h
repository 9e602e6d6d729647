// File: job_queue.h
//
// The order in which queued jobs run: higher priority first, then submission order (FIFO).
// A plain data structure; the scheduler guards it with its own mutex together with the set of
// running jobs, so "take the next job" and "cancel a queued job" are one atomic decision.
//
//   JobQueue q;
//   q.Push({.id = "a", .priority = 0, .seq = 1});
//   q.Push({.id = "b", .priority = 5, .seq = 2});
//   q.Pop()->id;  // "b": higher priority wins over earlier submission
//
// Thread-safety: thread-compatible (not thread-safe); callers serialize access.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "prunerd/v1/spec.pb.h"

namespace prunerd {

struct QueuedJob {
  std::string id;
  int32_t priority = 0;
  int64_t seq = 0;                             // submission order from the store
  absl::Time enqueue_time;                     // for the queue-wait histogram
  v1::Method method = v1::METHOD_UNSPECIFIED;  // for metrics labels
};

class JobQueue {
 public:
  // Ignored when the id is already queued.
  void Push(QueuedJob job);
  // The next job to run, removed from the queue; nullopt when empty.
  std::optional<QueuedJob> Pop();
  // Removes a queued job; false when it is not queued.
  bool Remove(const std::string& id);
  bool Contains(const std::string& id) const { return by_id_.count(id) > 0; }
  size_t size() const { return order_.size(); }
  bool empty() const { return order_.empty(); }
  // Ids in the order they would run.
  std::vector<std::string> Ids() const;

 private:
  struct Key {
    int32_t priority;
    int64_t seq;
    bool operator<(const Key& o) const {
      if (priority != o.priority) return priority > o.priority;
      return seq < o.seq;
    }
  };
  std::map<Key, QueuedJob> order_;
  std::map<std::string, Key> by_id_;
};

}  // namespace prunerd
