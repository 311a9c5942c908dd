// StoreMetrics: per-tenant hit counters have bounded cardinality.
#include "services/store_metrics.h"

#include <gtest/gtest.h>

#include <map>

namespace kvtier {
namespace {

TEST(StoreMetricsTest, TenantSeriesAreBounded) {
  BlockStoreOptions o;
  o.t1 = {.capacity_bytes = 1 << 20, .min_slot_bytes = 4096, .lock_mode = MemoryLockMode::kNone};
  auto store = BlockStore::Create(o);
  ASSERT_TRUE(store.ok());
  StoreMetrics metrics(store->get(), /*max_tenant_series=*/2);
  metrics.ObserveLookup("a", 10, 4);
  metrics.ObserveLookup("b", 5, 5);
  metrics.ObserveLookup("c", 3, 1);  // past the bound: "other"
  metrics.ObserveLookup("d", 2, 0);
  metrics.ObserveLookup("a", 10, 6);
  std::map<std::string, std::pair<double, double>> seen;  // tenant -> (requested, hit)
  for (const auto& c : metrics.collectables()) {
    for (const prometheus::MetricFamily& f : c->Collect()) {
      for (const prometheus::ClientMetric& m : f.metric) {
        if (m.label.empty() || m.label[0].name != "tenant") continue;
        if (f.name == "kvtier_tenant_lookup_requested_blocks_total") {
          seen[m.label[0].value].first = m.counter.value;
        } else if (f.name == "kvtier_tenant_lookup_hit_blocks_total") {
          seen[m.label[0].value].second = m.counter.value;
        }
      }
    }
  }
  const std::map<std::string, std::pair<double, double>> want = {
      {"a", {20, 10}}, {"b", {5, 5}}, {"other", {5, 1}}};
  EXPECT_EQ(seen, want);
}

}  // namespace
}  // namespace kvtier
