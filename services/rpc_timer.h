// RpcTimer: measures one RPC from its start and reports it to StoreMetrics once.
// Move-only: a handler starts it and hands it to the reactor that finishes the call, and
// the moved-from timer can no longer report. Not thread-safe; owned by the call it measures.
#ifndef KVTIER_SERVICES_RPC_TIMER_H_
#define KVTIER_SERVICES_RPC_TIMER_H_

#include "absl/time/clock.h"
#include "services/store_metrics.h"

namespace kvtier {

class RpcTimer {
 public:
  RpcTimer(StoreMetrics* metrics, StoreRpc rpc)
      : metrics_(metrics), rpc_(rpc), start_(absl::Now()) {}
  RpcTimer(RpcTimer&& other) noexcept
      : metrics_(other.metrics_), rpc_(other.rpc_), start_(other.start_), done_(other.done_) {
    other.done_ = true;
  }
  RpcTimer(const RpcTimer&) = delete;
  RpcTimer& operator=(const RpcTimer&) = delete;
  RpcTimer& operator=(RpcTimer&&) = delete;

  // Records the call with its final code; later calls are ignored.
  const grpc::Status& Finish(const grpc::Status& status) {
    if (!done_) {
      done_ = true;
      metrics_->ObserveRpc(rpc_, status.error_code(), absl::Now() - start_);
    }
    return status;
  }

 private:
  StoreMetrics* metrics_;
  StoreRpc rpc_;
  absl::Time start_;
  bool done_ = false;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_RPC_TIMER_H_
