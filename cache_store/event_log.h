// EventLog: the ordered stream of BlockStored / BlockRemoved events that routers watch.
//
// The store appends events while it holds its own mutex, so sequence numbers follow the
// order of the state changes they describe. The log keeps the newest `capacity` events in
// a ring; a subscriber sees only its own tenant's events and learns how many of them it
// lost when it fell behind the ring. A dispatcher thread calls each subscriber's
// `on_ready` (outside every lock) when it has something to read, so subscribers never
// poll and appending never waits for them.
//
// Thread-safe. on_ready must not block; it typically schedules a Read. It may run once
// more after Unsubscribe returns, so it must not capture anything that dies with the
// subscriber (hold shared state instead).
#ifndef KVTIER_CACHE_STORE_EVENT_LOG_H_
#define KVTIER_CACHE_STORE_EVENT_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/block_key.h"
#include "cache_store/tier.h"

namespace kvtier {

struct BlockEvent {
  enum class Type : uint8_t { kStored = 1, kRemoved = 2 };
  enum class Reason : uint8_t { kPut = 1, kEvicted = 2, kDeleted = 3, kCorrupted = 4 };

  uint64_t seq = 0;         // store-wide, assigned by Append
  uint64_t tenant_seq = 0;  // per tenant, assigned by Append
  Type type = Type::kStored;
  Reason reason = Reason::kPut;
  std::string tenant;
  BlockKey key;
  std::optional<BlockKey> parent;
  Tier tier = Tier::kHostDram;
  uint64_t layout_fingerprint = 0;
};

class EventLog {
 public:
  class Subscription;

  struct Batch {
    std::vector<BlockEvent> events;
    uint64_t lost = 0;    // this tenant's events dropped before these
    bool closed = false;  // the log is closed and this subscriber has read everything
  };

  explicit EventLog(size_t capacity);
  ~EventLog();  // closes and joins the dispatcher
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Assigns seq and tenant_seq and records the event.
  void Append(BlockEvent event) ABSL_LOCKS_EXCLUDED(mu_);

  // A subscription that starts after the newest event.
  std::shared_ptr<Subscription> Subscribe(std::string tenant, std::function<void()> on_ready)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(const std::shared_ptr<Subscription>& sub) ABSL_LOCKS_EXCLUDED(mu_);
  // Up to max_events of the subscriber's pending events.
  Batch Read(Subscription& sub, size_t max_events) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every subscription: each gets a final on_ready and then Batch::closed.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t next_seq() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void DispatchLoop();
  bool HasPending(const Subscription& sub) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<BlockEvent> ring_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, uint64_t> tenant_counts_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::shared_ptr<Subscription>> subs_ ABSL_GUARDED_BY(mu_);
  uint64_t appended_since_dispatch_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool close_dispatched_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread dispatcher_;
};

class EventLog::Subscription {
 public:
  Subscription(std::string tenant, std::function<void()> on_ready, uint64_t next_seq,
               uint64_t next_tenant_seq)
      : tenant_(std::move(tenant)),
        on_ready_(std::move(on_ready)),
        next_seq_(next_seq),
        next_tenant_seq_(next_tenant_seq) {}

 private:
  friend class EventLog;
  const std::string tenant_;
  const std::function<void()> on_ready_;
  uint64_t next_seq_;         // guarded by the log's mutex
  uint64_t next_tenant_seq_;  // guarded by the log's mutex
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_EVENT_LOG_H_
