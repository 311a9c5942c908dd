#include "services/store_metrics.h"

#include <prometheus/metric_family.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_format.h"

#include "services/metric_families.h"

namespace kvtier {
namespace {

const char* const kCodeNames[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

// Reads BlockStore::Stats() at each scrape.
class EngineCollector : public prometheus::Collectable {
 public:
  explicit EngineCollector(const BlockStore* store) : store_(store) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const BlockStoreStats s = store_->Stats();
    MetricFamilies out;
    auto add = [&](const char* name, const char* help, prometheus::MetricType type, double value,
                   MetricFamilies::Labels labels = {}) {
      out.Add(name, help, type, value, std::move(labels));
    };
    using T = prometheus::MetricType;
    const std::vector<prometheus::ClientMetric::Label> t1 = {{"tier", "t1"}};
    add("kvtier_lookups_total", "Lookup calls served.", T::Counter, s.lookups);
    add("kvtier_lookup_requested_blocks_total", "Full blocks in looked-up prompts.", T::Counter,
        s.lookup_requested_blocks);
    add("kvtier_lookup_hit_blocks_total", "Looked-up blocks found in the cached prefix.",
        T::Counter, s.lookup_hit_blocks);
    add("kvtier_lookup_requested_tokens_total", "Tokens in looked-up prompts.", T::Counter,
        s.lookup_requested_tokens);
    add("kvtier_lookup_hit_tokens_total", "Prompt tokens covered by the cached prefix.", T::Counter,
        s.lookup_hit_tokens);
    add("kvtier_presence_lookups_total",
        "Presence lookups served (a sharded client asking which blocks this shard holds); "
        "not counted in the lookup hit-rate series.",
        T::Counter, s.presence_lookups);
    const char* presence_help = "Full blocks of presence-looked-up prompts: requested, and held here.";
    add("kvtier_presence_lookup_blocks_total", presence_help, T::Counter,
        s.presence_requested_blocks, {{"result", "requested"}});
    add("kvtier_presence_lookup_blocks_total", presence_help, T::Counter,
        s.presence_held_blocks, {{"result", "held"}});
    add("kvtier_put_blocks_total", "Blocks carried by successful Puts, by result.", T::Counter,
        s.put_stored_blocks, {{"result", "stored"}});
    add("kvtier_put_blocks_total", "", T::Counter, s.put_existing_blocks, {{"result", "existing"}});
    add("kvtier_put_output_reported_blocks_total",
        "Blocks stored by Puts that reported the request's output length (T1's policy and T2 "
        "admission learn from it).",
        T::Counter, s.put_output_reported_blocks);
    add("kvtier_put_bytes_total", "Payload bytes received by successful Puts.", T::Counter,
        s.put_bytes);
    add("kvtier_put_failures_total", "Puts that were rejected or abandoned.", T::Counter,
        s.put_failures);
    add("kvtier_fetched_blocks_total", "Blocks opened for Fetch after verification.", T::Counter,
        s.fetched_blocks);
    add("kvtier_fetched_bytes_total", "Payload bytes of the blocks opened for Fetch.", T::Counter,
        s.fetched_bytes);
    const std::vector<prometheus::ClientMetric::Label> t2 = {{"tier", "t2"}};
    const bool has_t2 = s.t2_enabled;
    // Per-tier families: every series of a family is added back to back.
    auto per_tier = [&](const char* name, const char* help, T type, double v1, double v2) {
      add(name, help, type, v1, t1);
      if (has_t2) add(name, help, type, v2, t2);
    };
    per_tier("kvtier_evictions_total",
             "Blocks that left the store from this tier to make room (T1 victims demoted to T2 "
             "are counted in kvtier_demotions_total instead).",
             T::Counter, s.evicted_blocks, s.t2_evicted_blocks);
    per_tier("kvtier_tier_hit_blocks_total", "Lookup matches served by this tier.", T::Counter,
             s.lookup_hit_blocks_t1, s.lookup_hit_blocks_t2);
    add("kvtier_deleted_blocks_total", "Blocks removed by Delete.", T::Counter, s.deleted_blocks);
    per_tier("kvtier_checksum_failures_total",
             "Blocks that failed checksum verification (or could not be read) and were dropped.",
             T::Counter, s.checksum_failures - s.checksum_failures_t2, s.checksum_failures_t2);
    per_tier("kvtier_tier_capacity_bytes",
             "Bytes of the tier's slabs (T2: slots include a 4 KiB record header).", T::Gauge,
             s.t1_capacity_bytes, s.t2_capacity_bytes);
    per_tier("kvtier_tier_capacity_blocks",
             "Blocks of the smallest slot size the tier holds: an upper bound on its capacity "
             "in blocks.",
             T::Gauge, s.t1_capacity_blocks, s.t2_capacity_blocks);
    per_tier("kvtier_tier_allocated_bytes",
             "Bytes of the slots in use: payload rounded up to its size class, and reserved "
             "slots. used / allocated is the share of slot bytes that hold payload.",
             T::Gauge, s.t1_allocated_bytes, s.t2_allocated_bytes);
    per_tier("kvtier_tier_slabs", "Slabs the tier is cut into.", T::Gauge, s.t1_slabs, s.t2_slabs);
    per_tier("kvtier_tier_free_slabs", "Slabs that belong to no size class.", T::Gauge,
             s.t1_free_slabs, s.t2_free_slabs);
    per_tier("kvtier_slab_moves_total",
             "Slabs emptied and given to another size class (a layout that needs room).",
             T::Counter, s.t1_slab_moves, s.t2_slab_moves);
    add("kvtier_block_limit_evictions_total",
        "Blocks evicted because the store held --max_blocks blocks.", T::Counter,
        s.block_limit_evictions);
    per_tier("kvtier_tier_used_bytes", "Payload bytes of the blocks in the tier.", T::Gauge,
             s.t1_used_bytes, s.t2_used_bytes);
    per_tier("kvtier_tier_blocks", "Committed blocks in the tier.", T::Gauge, s.t1_used_blocks,
             s.t2_used_blocks);
    add("kvtier_tier_reserved_blocks", "Slots reserved by Puts and promotions in flight.", T::Gauge,
        s.t1_reserved_blocks, t1);
    add("kvtier_tier_locked", "1 when the tier's memory is pinned or locked.", T::Gauge,
        s.t1_locked ? 1 : 0, t1);
    if (has_t2) {
      add("kvtier_demotions_total", "Blocks moved from T1 to T2 on eviction.", T::Counter,
          s.demoted_blocks);
      add("kvtier_demotions_rejected_total",
          "T1 victims the T2 admission filter kept off the SSD (dropped instead).", T::Counter,
          s.demotion_rejected_blocks);
      add("kvtier_clean_demotions_total",
          "T1 victims that went back to the T2 copy kept from their promotion, writing nothing.",
          T::Counter, s.clean_demotions);
      add("kvtier_t2_copy_blocks", "T1 blocks that keep a valid copy in T2.", T::Gauge,
          s.t2_copy_blocks);
      add("kvtier_t2_write_queue_drops_total",
          "Demotions dropped because the T2 write queue was full (the disk falls behind).",
          T::Counter, s.t2_write_queue_drops);
      add("kvtier_t2_write_queue_bytes", "Bytes of demotions queued for the T2 writers.",
          T::Gauge, s.t2_write_queue_bytes);
      add("kvtier_promotions_total", "Blocks moved from T2 to T1 when read.", T::Counter,
          s.promoted_blocks);
      add("kvtier_t2_io_errors_total", "Failed T2 reads and writes.", T::Counter, s.t2_read_errors,
          {{"op", "read"}});
      add("kvtier_t2_io_errors_total", "", T::Counter, s.t2_write_errors, {{"op", "write"}});
      add("kvtier_t2_ios_total",
          "T2 disk reads (one per block) and writes (one per run of demotions into adjacent "
          "slots).",
          T::Counter, s.t2_reads,
          {{"op", "read"}});
      add("kvtier_t2_ios_total", "", T::Counter, s.t2_writes, {{"op", "write"}});
      add("kvtier_t2_io_seconds_total",
          "Time spent in T2 block reads and writes (divide by kvtier_t2_ios_total for the mean "
          "latency).",
          T::Counter, s.t2_read_seconds, {{"op", "read"}});
      add("kvtier_t2_io_seconds_total", "", T::Counter, s.t2_write_seconds, {{"op", "write"}});
      add("kvtier_t2_io_bytes_total", "Payload bytes read from and written to T2.", T::Counter,
          s.t2_bytes_read, {{"op", "read"}});
      add("kvtier_t2_io_bytes_total", "", T::Counter, s.t2_bytes_written, {{"op", "write"}});
      add("kvtier_t2_recovered_blocks", "Blocks found on T2 at start and served again.", T::Gauge,
          s.t2_recovered_blocks);
      add("kvtier_t2_recovery_drops", "T2 records found damaged at start and dropped.", T::Gauge,
          s.t2_recovery_drops);
      add("kvtier_t2_direct_io", "1 when T2 uses O_DIRECT.", T::Gauge, s.t2_direct_io ? 1 : 0);
    }
    // By layout: the kMaxLayoutSeries layouts with the most bytes (Stats orders them).
    const size_t layouts = std::min(s.layouts.size(), StoreMetrics::kMaxLayoutSeries);
    const char* layout_bytes_help =
        "Payload bytes of the blocks of a layout (by fingerprint, as in Stats; the layouts "
        "with the most bytes) in the tier.";
    for (size_t i = 0; i < layouts; ++i) {
      const std::string fp = absl::StrFormat("%016x", s.layouts[i].layout_fingerprint);
      add("kvtier_layout_used_bytes", layout_bytes_help, T::Gauge, s.layouts[i].t1_bytes,
          {{"tier", "t1"}, {"layout", fp}});
      if (has_t2) {
        add("kvtier_layout_used_bytes", layout_bytes_help, T::Gauge, s.layouts[i].t2_bytes,
            {{"tier", "t2"}, {"layout", fp}});
      }
    }
    for (size_t i = 0; i < layouts; ++i) {
      const std::string fp = absl::StrFormat("%016x", s.layouts[i].layout_fingerprint);
      add("kvtier_layout_blocks", "Blocks of a layout in the tier (as kvtier_layout_used_bytes).",
          T::Gauge, s.layouts[i].t1_blocks, {{"tier", "t1"}, {"layout", fp}});
      if (has_t2) {
        add("kvtier_layout_blocks", "", T::Gauge, s.layouts[i].t2_blocks,
            {{"tier", "t2"}, {"layout", fp}});
      }
    }
    // By tenant: the kMaxTenantUsageSeries tenants with the most bytes (Stats orders them).
    const size_t tenants = std::min(s.tenants.size(), StoreMetrics::kMaxTenantUsageSeries);
    auto per_tenant = [&](const char* name, const char* help, T type, auto value) {
      for (size_t i = 0; i < tenants; ++i) {
        const TenantUsage& u = s.tenants[i];
        add(name, i == 0 ? help : "", type, value(u, Tier::kHostDram),
            {{"tenant", u.tenant}, {"tier", "t1"}});
        if (has_t2) {
          add(name, "", type, value(u, Tier::kLocalSsd), {{"tenant", u.tenant}, {"tier", "t2"}});
        }
      }
    };
    per_tenant("kvtier_tenant_used_bytes",
               "Payload bytes a tenant holds in the tier, Puts in flight included (the tenants "
               "with the most bytes).",
               T::Gauge, [](const TenantUsage& u, Tier t) {
                 return static_cast<double>(t == Tier::kHostDram ? u.t1_bytes : u.t2_bytes);
               });
    per_tenant("kvtier_tenant_blocks", "Blocks a tenant holds in the tier.", T::Gauge,
               [](const TenantUsage& u, Tier t) {
                 return static_cast<double>(t == Tier::kHostDram ? u.t1_blocks : u.t2_blocks);
               });
    {
      per_tenant("kvtier_tenant_guarantee_bytes",
                 "Bytes of the tier guaranteed to the tenant (--tenant_quota_file).", T::Gauge,
                 [](const TenantUsage& u, Tier t) {
                   return static_cast<double>(t == Tier::kHostDram ? u.quota.t1_guarantee
                                                                   : u.quota.t2_guarantee);
                 });
      per_tenant("kvtier_tenant_limit_bytes",
                 "Most bytes of the tier the tenant may hold (0: no limit).", T::Gauge,
                 [](const TenantUsage& u, Tier t) {
                   return static_cast<double>(t == Tier::kHostDram ? u.quota.t1_limit
                                                                   : u.quota.t2_limit);
                 });
      per_tenant("kvtier_tenant_limit_evictions_total",
                 "Blocks a tenant evicted of its own because it was at its limit in the tier.",
                 T::Counter, [](const TenantUsage& u, Tier t) {
                   return static_cast<double>(t == Tier::kHostDram ? u.t1_limit_evictions
                                                                   : u.t2_limit_evictions);
                 });
    }
    add("kvtier_tenants_holding", "Tenants that hold blocks in the store.", T::Gauge,
        s.tenants_holding);
    add("kvtier_active_leases", "Lookup leases not yet released or expired.", T::Gauge,
        s.active_leases);
    add("kvtier_pinned_blocks", "Blocks pinned against eviction.", T::Gauge, s.pinned_blocks);
    add("kvtier_t1_bonus_weight",
        "Turnovers of T1 life the eviction policy gives a block sure to return over one sure "
        "not to, chosen by its miniature simulations (0: recency alone).",
        T::Gauge, s.t1_bonus_weight);
    return out.Take();
  }

 private:
  const BlockStore* store_;
};

}  // namespace

const char* StoreRpcName(StoreRpc rpc) {
  static const char* const kNames[kNumStoreRpcs] = {
      "Lookup", "Put", "Fetch", "Release", "Pin", "Unpin", "Delete", "Stats", "WatchEvents"};
  return kNames[static_cast<int>(rpc)];
}

StoreMetrics::StoreMetrics(const BlockStore* store, uint32_t max_tenant_series)
    : registry_(std::make_shared<prometheus::Registry>()),
      engine_(std::make_shared<EngineCollector>(store)),
      max_tenant_series_(max_tenant_series) {
  tenant_requested_ = &prometheus::BuildCounter()
                           .Name("kvtier_tenant_lookup_requested_blocks_total")
                           .Help(
                               "Full blocks in looked-up prompts, by tenant (bounded; the "
                               "rest as tenant=\"other\").")
                           .Register(*registry_);
  tenant_hit_ = &prometheus::BuildCounter()
                     .Name("kvtier_tenant_lookup_hit_blocks_total")
                     .Help("Looked-up blocks found in the cached prefix, by tenant (bounded).")
                     .Register(*registry_);
  auto& latency = prometheus::BuildHistogram()
                      .Name("kvtier_rpc_duration_seconds")
                      .Help("Server-side duration of CacheStore RPCs, by method.")
                      .Register(*registry_);
  rpcs_total_ = &prometheus::BuildCounter()
                     .Name("kvtier_rpcs_total")
                     .Help("CacheStore RPCs finished, by method and status code.")
                     .Register(*registry_);
  // 50 us to ~30 s, x2 per bucket.
  prometheus::Histogram::BucketBoundaries bounds;
  for (double b = 50e-6; b < 40; b *= 2) bounds.push_back(b);
  for (int i = 0; i < kNumStoreRpcs; ++i) {
    const std::string method = StoreRpcName(static_cast<StoreRpc>(i));
    latency_[i] = &latency.Add({{"method", method}}, bounds);
    ok_total_[i] = &rpcs_total_->Add({{"method", method}, {"code", "OK"}});
  }
}

std::vector<std::shared_ptr<prometheus::Collectable>> StoreMetrics::collectables() const {
  return {registry_, engine_};
}

void StoreMetrics::ObserveLookup(const std::string& tenant, uint32_t requested, uint32_t hit) {
  TenantCounters counters;
  {
    absl::MutexLock lock(&tenants_mu_);
    auto it = tenants_.find(tenant);
    if (it == tenants_.end()) {
      const std::string label = tenants_.size() < max_tenant_series_ ? tenant : "other";
      auto other = tenants_.find(label);
      if (other != tenants_.end()) {
        it = other;
      } else {
        it = tenants_
                 .emplace(label, TenantCounters{&tenant_requested_->Add({{"tenant", label}}),
                                                &tenant_hit_->Add({{"tenant", label}})})
                 .first;
      }
    }
    counters = it->second;
  }
  counters.requested->Increment(requested);
  counters.hit->Increment(hit);
}

void StoreMetrics::ObserveRpc(StoreRpc rpc, grpc::StatusCode code, absl::Duration elapsed) {
  const int i = static_cast<int>(rpc);
  latency_[i]->Observe(absl::ToDoubleSeconds(elapsed));
  if (code == grpc::StatusCode::OK) {
    ok_total_[i]->Increment();
    return;
  }
  // Error children are created on first use: at most 16 codes per method.
  const int c = static_cast<int>(code);
  const char* name = (c >= 0 && c <= 16) ? kCodeNames[c] : "UNKNOWN";
  rpcs_total_->Add({{"method", StoreRpcName(rpc)}, {"code", name}}).Increment();
}

}  // namespace kvtier
