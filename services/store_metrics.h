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

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
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
  // Layouts that get kvtier_layout_* series (the ones with the most bytes).
  static constexpr size_t kMaxLayoutSeries = 16;
  // Tenants with usage series (kvtier_tenant_used_bytes, ...): the ones with the most bytes.
  static constexpr size_t kMaxTenantUsageSeries = 16;

  // Per-tenant hit counters get their own series for the first `max_tenant_series`
  // tenants seen; later tenants share the series tenant="other" (bounded cardinality).
  explicit StoreMetrics(const BlockStore* store, uint32_t max_tenant_series = 32);

  // Everything to expose: the RPC registry and the engine collector.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const;

  void ObserveRpc(StoreRpc rpc, grpc::StatusCode code, absl::Duration elapsed);
  // A served Lookup of `requested` full blocks of which `hit` were cached.
  void ObserveLookup(const std::string& tenant, uint32_t requested, uint32_t hit);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> engine_;
  prometheus::Family<prometheus::Counter>* rpcs_total_;
  std::array<prometheus::Histogram*, kNumStoreRpcs> latency_{};
  std::array<prometheus::Counter*, kNumStoreRpcs> ok_total_{};

  struct TenantCounters {
    prometheus::Counter* requested;
    prometheus::Counter* hit;
  };
  const uint32_t max_tenant_series_;
  prometheus::Family<prometheus::Counter>* tenant_requested_;
  prometheus::Family<prometheus::Counter>* tenant_hit_;
  absl::Mutex tenants_mu_;
  absl::flat_hash_map<std::string, TenantCounters> tenants_ ABSL_GUARDED_BY(tenants_mu_);
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_STORE_METRICS_H_
