#include "server/event_hub.h"

namespace prunerd {

struct JobEventHub::Subscription::Channel {
  absl::Mutex mu;
  std::vector<v1::JobEvent> events ABSL_GUARDED_BY(mu);  // published since creation, in order
  bool shutdown ABSL_GUARDED_BY(mu) = false;
};

JobEventHub::WaitResult JobEventHub::Subscription::Wait(int64_t after_seq, absl::Time deadline,
                                                        std::vector<v1::JobEvent>* out) {
  Channel* c = channel_.get();
  absl::MutexLock l(&c->mu);
  auto ready = [c, after_seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu) {
    return c->shutdown || (!c->events.empty() && c->events.back().seq() > after_seq);
  };
  c->mu.AwaitWithDeadline(absl::Condition(&ready), deadline);
  bool any = false;
  for (const v1::JobEvent& ev : c->events) {
    if (ev.seq() > after_seq) {
      out->push_back(ev);
      any = true;
    }
  }
  if (any) return WaitResult::kEvents;
  return c->shutdown ? WaitResult::kShutdown : WaitResult::kTimeout;
}

std::unique_ptr<JobEventHub::Subscription> JobEventHub::Subscribe(const std::string& job_id) {
  absl::MutexLock l(&mu_);
  for (auto it = channels_.begin(); it != channels_.end();) {  // drop unwatched jobs
    if (it->second.expired() && it->first != job_id) {
      it = channels_.erase(it);
    } else {
      ++it;
    }
  }
  std::shared_ptr<Subscription::Channel> channel = channels_[job_id].lock();
  if (!channel) {
    channel = std::make_shared<Subscription::Channel>();
    channels_[job_id] = channel;
  }
  if (shutdown_) {
    absl::MutexLock cl(&channel->mu);
    channel->shutdown = true;
  }
  return std::unique_ptr<Subscription>(new Subscription(channel));
}

void JobEventHub::Publish(const v1::JobEvent& event) {
  std::shared_ptr<Subscription::Channel> channel;
  {
    absl::MutexLock l(&mu_);
    auto it = channels_.find(event.job_id());
    if (it == channels_.end()) return;
    channel = it->second.lock();
    if (!channel) {
      channels_.erase(it);
      return;
    }
  }
  absl::MutexLock cl(&channel->mu);
  channel->events.push_back(event);
}

void JobEventHub::Shutdown() {
  std::vector<std::shared_ptr<Subscription::Channel>> live;
  {
    absl::MutexLock l(&mu_);
    shutdown_ = true;
    for (auto& [id, weak] : channels_) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
  }
  for (auto& c : live) {
    absl::MutexLock cl(&c->mu);
    c->shutdown = true;
  }
}

bool JobEventHub::shutting_down() const {
  absl::MutexLock l(&mu_);
  return shutdown_;
}

int JobEventHub::subscribers() const {
  absl::MutexLock l(&mu_);
  int n = 0;
  for (const auto& [id, weak] : channels_) n += static_cast<int>(weak.use_count());
  return n;
}

}  // namespace prunerd
