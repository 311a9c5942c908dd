#include "cache_store/event_log.h"

#include <algorithm>

namespace kvtier {

EventLog::EventLog(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)), dispatcher_([this] { DispatchLoop(); }) {}

EventLog::~EventLog() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    stopping_ = true;
  }
  dispatcher_.join();
}

void EventLog::Append(BlockEvent event) {
  absl::MutexLock lock(&mu_);
  event.seq = next_seq_++;
  event.tenant_seq = tenant_counts_[event.tenant]++;
  ring_.push_back(std::move(event));
  if (ring_.size() > capacity_) ring_.pop_front();
  ++appended_since_dispatch_;
}

std::shared_ptr<EventLog::Subscription> EventLog::Subscribe(std::string tenant,
                                                            std::function<void()> on_ready) {
  absl::MutexLock lock(&mu_);
  auto it = tenant_counts_.find(tenant);
  uint64_t tenant_next = it == tenant_counts_.end() ? 0 : it->second;
  auto sub = std::make_shared<Subscription>(std::move(tenant), std::move(on_ready), next_seq_,
                                            tenant_next);
  subs_.insert(sub);
  // A subscriber that arrives after Close must still hear that the log is closed.
  if (closed_) close_dispatched_ = false;
  return sub;
}

void EventLog::Unsubscribe(const std::shared_ptr<Subscription>& sub) {
  absl::MutexLock lock(&mu_);
  subs_.erase(sub);
}

bool EventLog::HasPending(const Subscription& sub) const {
  auto it = tenant_counts_.find(sub.tenant_);
  return it != tenant_counts_.end() && it->second > sub.next_tenant_seq_;
}

EventLog::Batch EventLog::Read(Subscription& sub, size_t max_events) {
  absl::MutexLock lock(&mu_);
  Batch batch;
  const uint64_t first_seq = ring_.empty() ? next_seq_ : ring_.front().seq;
  uint64_t seq = std::max(sub.next_seq_, first_seq);
  for (; seq < next_seq_ && batch.events.size() < max_events; ++seq) {
    const BlockEvent& e = ring_[seq - first_seq];
    if (e.tenant != sub.tenant_) continue;
    batch.lost += e.tenant_seq - sub.next_tenant_seq_;
    sub.next_tenant_seq_ = e.tenant_seq + 1;
    batch.events.push_back(e);
  }
  sub.next_seq_ = seq;
  if (seq == next_seq_) {
    // Everything this tenant appended that is no longer in the ring was lost.
    auto it = tenant_counts_.find(sub.tenant_);
    if (it != tenant_counts_.end() && it->second > sub.next_tenant_seq_) {
      batch.lost += it->second - sub.next_tenant_seq_;
      sub.next_tenant_seq_ = it->second;
    }
  }
  batch.closed = closed_ && batch.events.empty() && !HasPending(sub);
  return batch;
}

void EventLog::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

uint64_t EventLog::next_seq() const {
  absl::MutexLock lock(&mu_);
  return next_seq_;
}

void EventLog::DispatchLoop() {
  while (true) {
    std::vector<std::shared_ptr<Subscription>> ready;
    bool exit = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](EventLog* log) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return log->appended_since_dispatch_ > 0 || log->stopping_ ||
                   (log->closed_ && !log->close_dispatched_);
          },
          this));
      const bool closing = closed_ && !close_dispatched_;
      for (const auto& sub : subs_) {
        if (closing || HasPending(*sub)) ready.push_back(sub);
      }
      appended_since_dispatch_ = 0;
      if (closing) close_dispatched_ = true;
      exit = stopping_;
    }
    for (const auto& sub : ready) sub->on_ready_();
    if (exit) return;
  }
}

}  // namespace kvtier
