#include "cache_store/tenant_ledger.h"

#include <algorithm>

#include "cache_store/log.h"

namespace kvtier {

TenantLedger::TenantLedger(TenantQuotas quotas)
    : quotas_(std::move(quotas)), enabled_(quotas_.enabled()) {}

uint32_t TenantLedger::Acquire(std::string_view tenant) {
  auto it = ids_.find(absl::string_view(tenant.data(), tenant.size()));
  if (it != ids_.end()) {
    ++accounts_[it->second].refs;
    return it->second;
  }
  uint32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<uint32_t>(accounts_.size());
    accounts_.emplace_back();
  }
  Account& a = accounts_[id];
  a = Account{};
  a.name = std::string(tenant);
  a.quota = quotas_.For(tenant);
  a.refs = 1;
  ids_.emplace(a.name, id);
  return id;
}

void TenantLedger::Release(uint32_t id) {
  Account& a = accounts_[id];
  KVTIER_CHECK(a.refs > 0) << "tenant " << id << " released more often than acquired";
  if (--a.refs > 0) return;
  KVTIER_CHECK(a.bytes[0] == 0 && a.bytes[1] == 0 && a.blocks[0] == 0 && a.blocks[1] == 0)
      << "tenant " << a.name << " released while it is charged";
  ids_.erase(a.name);
  a.name.clear();
  free_ids_.push_back(id);
}

void TenantLedger::Charge(uint32_t id, Tier tier, int64_t bytes, int64_t blocks) {
  Account& a = accounts_[id];
  const int t = Index(tier);
  KVTIER_CHECK(bytes >= 0 || a.bytes[t] >= static_cast<uint64_t>(-bytes))
      << "tenant " << a.name << " refunded more bytes than charged";
  KVTIER_CHECK(blocks >= 0 || a.blocks[t] >= static_cast<uint64_t>(-blocks))
      << "tenant " << a.name << " refunded more blocks than charged";
  a.bytes[t] += bytes;
  a.blocks[t] += blocks;
}

bool TenantLedger::OverLimit(uint32_t id, Tier tier, uint64_t incoming) const {
  const Account& a = accounts_[id];
  const uint64_t limit = tier == Tier::kHostDram ? a.quota.t1_limit : a.quota.t2_limit;
  return limit != 0 && a.bytes[Index(tier)] + incoming > limit;
}

bool TenantLedger::Yields(uint32_t id, Tier tier, uint64_t bytes) const {
  const Account& a = accounts_[id];
  const uint64_t guarantee = tier == Tier::kHostDram ? a.quota.t1_guarantee : a.quota.t2_guarantee;
  const uint64_t used = a.bytes[Index(tier)];
  return guarantee == 0 || (used >= bytes && used - bytes >= guarantee);
}

bool TenantLedger::BelowGuarantee(uint32_t id, Tier tier) const {
  const Account& a = accounts_[id];
  const uint64_t guarantee = tier == Tier::kHostDram ? a.quota.t1_guarantee : a.quota.t2_guarantee;
  return a.bytes[Index(tier)] < guarantee;
}

std::pair<uint32_t, bool> TenantLedger::TenantClassId(int t, int cls, uint32_t id) {
  const uint64_t key = (uint64_t{static_cast<uint32_t>(cls)} << 32) | id;
  auto [it, added] =
      partition_of_[t].emplace(key, static_cast<uint32_t>(partition_of_[t].size()));
  return {it->second, added};
}

uint32_t TenantLedger::PartitionOf(Tier tier, int cls, uint32_t id) {
  const int t = Index(tier);
  std::vector<std::vector<Partition>>& by_class = by_class_[t];
  if (by_class.size() <= static_cast<size_t>(cls)) by_class.resize(cls + 1);
  if (!enabled_) {
    if (by_class[cls].empty()) by_class[cls].push_back({static_cast<uint32_t>(cls), kNoTenant});
    return static_cast<uint32_t>(cls);
  }
  const auto [partition, added] = TenantClassId(t, cls, id);
  if (added) by_class[cls].push_back({partition, id});
  return partition;
}

uint32_t TenantLedger::LearnerOf(Tier tier, int cls, uint32_t id) {
  if (enabled_) return PartitionOf(tier, cls, id);
  return TenantClassId(Index(tier), cls, id).first;
}

std::span<const TenantLedger::Partition> TenantLedger::PartitionsOfClass(Tier tier,
                                                                         int cls) const {
  const std::vector<std::vector<Partition>>& by_class = by_class_[Index(tier)];
  if (cls < 0 || static_cast<size_t>(cls) >= by_class.size()) return {};
  return by_class[cls];
}

TenantUsage TenantLedger::UsageOf(const Account& a) const {
  return TenantUsage{.tenant = a.name,
                     .quota = a.quota,
                     .t1_bytes = a.bytes[0],
                     .t1_blocks = a.blocks[0],
                     .t2_bytes = a.bytes[1],
                     .t2_blocks = a.blocks[1],
                     .t1_limit_evictions = a.limit_evictions[0],
                     .t2_limit_evictions = a.limit_evictions[1]};
}

std::vector<TenantUsage> TenantLedger::Usage() const {
  std::vector<TenantUsage> out;
  out.reserve(ids_.size());
  for (const auto& [name, id] : ids_) {
    const Account& a = accounts_[id];
    if (a.blocks[0] + a.blocks[1] == 0) continue;
    out.push_back(UsageOf(a));
  }
  std::sort(out.begin(), out.end(), [](const TenantUsage& x, const TenantUsage& y) {
    const uint64_t a = x.t1_bytes + x.t2_bytes, b = y.t1_bytes + y.t2_bytes;
    return a != b ? a > b : x.tenant < y.tenant;
  });
  return out;
}

TenantUsage TenantLedger::UsageOf(std::string_view tenant) const {
  auto it = ids_.find(absl::string_view(tenant.data(), tenant.size()));
  if (it == ids_.end()) return TenantUsage{.tenant = std::string(tenant), .quota = quotas_.For(tenant)};
  return UsageOf(accounts_[it->second]);
}

}  // namespace kvtier
