#include "services/watch_events_reactor.h"

#include "services/proto_convert.h"

namespace kvtier {

WatchEventsReactor::WatchEventsReactor(EventLog* log, std::string tenant,
                                       uint32_t max_events_per_message, RpcTimer timer)
    : log_(log),
      max_events_(max_events_per_message),
      timer_(std::move(timer)),
      state_(std::make_shared<State>()) {
  absl::MutexLock lock(&state_->mu);
  state_->reactor = this;
  std::weak_ptr<State> weak = state_;
  // `state` is the reactor's own state_, so holding state->mu is holding
  // reactor->state_->mu; the analysis cannot see through that alias.
  sub_ = log_->Subscribe(std::move(tenant), [weak]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    std::shared_ptr<State> state = weak.lock();
    if (!state) return;
    absl::MutexLock lock(&state->mu);
    if (state->reactor != nullptr) state->reactor->WriteIfReadyLocked();
  });
  state_->write_in_flight = true;
  StartWrite(&message_);  // the empty "subscribed" message
}

void WatchEventsReactor::WriteIfReadyLocked() {
  if (state_->write_in_flight || state_->finished) return;
  EventLog::Batch batch = log_->Read(*sub_, max_events_);
  if (batch.closed) {
    FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the store is shutting down"));
    return;
  }
  if (batch.events.empty() && batch.lost == 0) return;
  message_.Clear();
  message_.set_lost_events(batch.lost);
  for (const BlockEvent& e : batch.events) EventToProto(e, message_.add_events());
  state_->write_in_flight = true;
  StartWrite(&message_);
}

void WatchEventsReactor::FinishLocked(const grpc::Status& status) {
  if (state_->finished) return;
  state_->finished = true;
  Finish(timer_.Finish(status));
}

void WatchEventsReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&state_->mu);
  state_->write_in_flight = false;
  if (!ok) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch stream broken"));
    return;
  }
  WriteIfReadyLocked();
}

void WatchEventsReactor::OnCancel() {
  absl::MutexLock lock(&state_->mu);
  FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
}

void WatchEventsReactor::OnDone() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->reactor = nullptr;
  }
  log_->Unsubscribe(sub_);
  delete this;
}

}  // namespace kvtier
