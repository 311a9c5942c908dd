// StoreMetrics: the Prometheus metrics of kvtier-store (names in docs/metrics.md).
//
// Engine figures (hits, puts, fetches, evictions, tier occupancy, leases, pins) are owned
// by BlockStore and read from BlockStore::Stats() at scrape time by a Collectable, so the
// engine keeps one source of truth and knows nothing of Prometheus. RPC counts and latency
// histograms are recorded here, with every per-method child created at start-up.
// Thread-safe.
#ifndef KVTIER_SERVICES_STORE_METRICS_H_
#define KVTIER_SERVICES_STORE_METRICS_H_

#include <grpcpp/support/status.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>

#include "absl/time/time.h"
#include "cache_store/block_store.h"

namespace kvtier {

enum class StoreRpc {
  kLookup,
  kPut,
  kFetch,
  kRelease,
  kPin,
  kUnpin,
  kDelete,
  kStats,
  kWatchEvents,
};
inline constexpr int kNumStoreRpcs = 9;
const char* StoreRpcName(StoreRpc rpc);

class StoreMetrics {
 public:
  explicit StoreMetrics(const BlockStore* store);

  // Everything to expose: the RPC registry and the engine collector.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const;

  void ObserveRpc(StoreRpc rpc, grpc::StatusCode code, absl::Duration elapsed);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> engine_;
  prometheus::Family<prometheus::Counter>* rpcs_total_;
  std::array<prometheus::Histogram*, kNumStoreRpcs> latency_{};
  std::array<prometheus::Counter*, kNumStoreRpcs> ok_total_{};
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_STORE_METRICS_H_
