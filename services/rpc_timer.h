// RpcTimer: measures one RPC from its start and reports it to StoreMetrics once.
// Not thread-safe; owned by the call it measures.
#ifndef KVTIER_SERVICES_RPC_TIMER_H_
#define KVTIER_SERVICES_RPC_TIMER_H_

#include "absl/time/clock.h"
#include "services/store_metrics.h"

namespace kvtier {

class RpcTimer {
 public:
  RpcTimer(StoreMetrics* metrics, StoreRpc rpc)
      : metrics_(metrics), rpc_(rpc), start_(absl::Now()) {}

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
