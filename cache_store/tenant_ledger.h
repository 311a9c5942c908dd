// TenantLedger: the store's account of each tenant: its quota (cache_store/tenant_quota.h),
// what it holds in each tier, and the eviction-policy partitions its blocks are filed in.
//
// Usage counts payload bytes and blocks: resident blocks, plus the slots Puts in flight
// reserved for the tenant (a tenant cannot pass its limit by racing Puts). The store
// charges and refunds; the ledger only adds up and answers questions:
//  - OverLimit: would `incoming` more bytes take the tenant past its limit?
//  - Yields: may `bytes` of its blocks be evicted to make room for another tenant, i.e.
//    does it keep at least its guarantee afterwards?
//  - BelowGuarantee: does it hold less than its guarantee (so it grows into it by evicting
//    other tenants' blocks before its own)?
//
// Partitions. A policy keeps one victim order per partition (cache_store/eviction_policy.h).
// Without quotas (TenantQuotas::enabled() false) a partition is a size class, shared by
// every tenant, exactly as before quotas existed. With quotas each (size class, tenant)
// pair has its own partition, so the store can find a tenant's own victim, or the best
// victim among tenants that may yield, in O(tenants with blocks of that class).
//
// Ids are dense and reused: an account lives while something references it (a block, a
// Put in flight); Acquire/Release count those references. Not thread-safe: the store calls
// it under its mutex.
#ifndef KVTIER_CACHE_STORE_TENANT_LEDGER_H_
#define KVTIER_CACHE_STORE_TENANT_LEDGER_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "cache_store/tenant_quota.h"
#include "cache_store/tier.h"

namespace kvtier {

// What one tenant holds, its quota, and how often its own limit evicted its blocks.
struct TenantUsage {
  std::string tenant;
  TenantQuota quota;
  uint64_t t1_bytes = 0;
  uint64_t t1_blocks = 0;
  uint64_t t2_bytes = 0;
  uint64_t t2_blocks = 0;
  uint64_t t1_limit_evictions = 0;
  uint64_t t2_limit_evictions = 0;
};

class TenantLedger {
 public:
  static constexpr uint32_t kNoTenant = UINT32_MAX;

  struct Partition {
    uint32_t partition;
    uint32_t tenant;  // kNoTenant: shared by every tenant (quotas off)
  };

  explicit TenantLedger(TenantQuotas quotas);

  bool enabled() const { return enabled_; }
  // The tenant's id, its account created on first use; one reference more.
  uint32_t Acquire(std::string_view tenant);
  // One reference less; the account goes (its id is reused) with the last.
  // REQUIRES: a reference taken with Acquire; nothing charged when the last goes.
  void Release(uint32_t id);

  const std::string& name(uint32_t id) const { return accounts_[id].name; }
  const TenantQuota& quota(uint32_t id) const { return accounts_[id].quota; }
  // Adds (or with negative values, removes) bytes and blocks of the tenant in a tier.
  void Charge(uint32_t id, Tier tier, int64_t bytes, int64_t blocks);
  uint64_t used_bytes(uint32_t id, Tier tier) const { return accounts_[id].bytes[Index(tier)]; }
  bool OverLimit(uint32_t id, Tier tier, uint64_t incoming) const;
  bool Yields(uint32_t id, Tier tier, uint64_t bytes) const;
  // Holds less than its guarantee: it takes room from tenants above theirs before it
  // evicts its own blocks.
  bool BelowGuarantee(uint32_t id, Tier tier) const;
  void CountLimitEviction(uint32_t id, Tier tier) { ++accounts_[id].limit_evictions[Index(tier)]; }

  // The partition of the tenant's blocks of size class `cls` in the tier.
  uint32_t PartitionOf(Tier tier, int cls, uint32_t id);
  // A dense id for a tenant's blocks of one size class, with or without quotas (with
  // quotas it is the partition): the policy learns its reuse estimates and keeps its ghost
  // history per learner, so one tenant's workload does not teach another's blocks.
  uint32_t LearnerOf(Tier tier, int cls, uint32_t id);
  // Every partition of the class (one, shared, when quotas are off).
  std::span<const Partition> PartitionsOfClass(Tier tier, int cls) const;

  // Every tenant that holds something, most bytes (T1 + T2) first.
  std::vector<TenantUsage> Usage() const;
  // One tenant's; zero usage when it holds nothing.
  TenantUsage UsageOf(std::string_view tenant) const;
  size_t tenants() const { return ids_.size(); }

 private:
  struct Account {
    std::string name;
    TenantQuota quota;
    uint32_t refs = 0;
    std::array<uint64_t, 2> bytes{};  // by Index(tier)
    std::array<uint64_t, 2> blocks{};
    std::array<uint64_t, 2> limit_evictions{};
  };
  static int Index(Tier tier) { return tier == Tier::kHostDram ? 0 : 1; }
  // The dense id of the tenant's blocks of class `cls` in tier index `t` (ids in order of
  // first use), and whether it is new.
  std::pair<uint32_t, bool> TenantClassId(int t, int cls, uint32_t id);
  TenantUsage UsageOf(const Account& a) const;

  const TenantQuotas quotas_;
  const bool enabled_;
  std::vector<Account> accounts_;  // by id; refs == 0: free
  std::vector<uint32_t> free_ids_;
  absl::flat_hash_map<std::string, uint32_t> ids_;
  // By tier index: (class << 32 | tenant id) -> learner (with quotas: partition; the ids
  // are dense, the map's size is the next), and partitions by class.
  std::array<absl::flat_hash_map<uint64_t, uint32_t>, 2> partition_of_;
  std::array<std::vector<std::vector<Partition>>, 2> by_class_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_TENANT_LEDGER_H_
