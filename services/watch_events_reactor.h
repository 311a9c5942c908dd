// WatchEventsReactor: streams the caller's tenant's block events (EventLog) until the
// client cancels or the store shuts down.
//
// The first message is empty: it tells the client that the subscription is live, so
// every event after it will be seen. Afterwards the EventLog's dispatcher wakes the
// reactor when events arrive; one write is in flight at a time and each carries what has
// accumulated, so a slow watcher gets bigger batches rather than an unbounded queue (and
// `lost_events` when it falls behind the log). Deletes itself in OnDone; the shared state
// outlives it for a late wake-up from the dispatcher.
#ifndef KVTIER_SERVICES_WATCH_EVENTS_REACTOR_H_
#define KVTIER_SERVICES_WATCH_EVENTS_REACTOR_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/event_log.h"
#include "kvtier/v1/cache_store.grpc.pb.h"
#include "services/rpc_timer.h"

namespace kvtier {

class WatchEventsReactor final : public grpc::ServerWriteReactor<v1::WatchEventsResponse> {
 public:
  WatchEventsReactor(EventLog* log, std::string tenant, uint32_t max_events_per_message,
                     RpcTimer timer);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Shared with the subscription's wake-up callback, which may outlive the reactor.
  struct State {
    absl::Mutex mu;
    WatchEventsReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;  // null once done
    bool write_in_flight ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
  };

  void WriteIfReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);

  EventLog* log_;
  uint32_t max_events_;
  RpcTimer timer_;
  const std::shared_ptr<State> state_;
  std::shared_ptr<EventLog::Subscription> sub_;
  v1::WatchEventsResponse message_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_WATCH_EVENTS_REACTOR_H_
