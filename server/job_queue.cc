#include "server/job_queue.h"

namespace prunerd {

void JobQueue::Push(QueuedJob job) {
  if (by_id_.count(job.id)) return;
  Key key{job.priority, job.seq};
  by_id_[job.id] = key;
  order_.emplace(key, std::move(job));
}

std::optional<QueuedJob> JobQueue::Pop() {
  if (order_.empty()) return std::nullopt;
  auto it = order_.begin();
  QueuedJob job = std::move(it->second);
  order_.erase(it);
  by_id_.erase(job.id);
  return job;
}

bool JobQueue::Remove(const std::string& id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  order_.erase(it->second);
  by_id_.erase(it);
  return true;
}

std::vector<std::string> JobQueue::Ids() const {
  std::vector<std::string> ids;
  for (const auto& [key, job] : order_) ids.push_back(job.id);
  return ids;
}

}  // namespace prunerd
