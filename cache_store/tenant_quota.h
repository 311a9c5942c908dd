// TenantQuota: how much of each tier a tenant is guaranteed and may hold, and the table
// of them a store enforces (cache_store/tenant_ledger.h does the accounting).
//
//  - guarantee: payload bytes of the tier that other tenants' blocks can never take from
//    this tenant: while it holds no more than its guarantee (counting the block that would
//    go), its blocks are not evicted to make room for another tenant's.
//  - limit: the most payload bytes of the tier it may hold (0: no limit). A tenant at its
//    limit makes room among its own blocks.
//
// A quota file has one tenant per line, '#' starts a comment:
//
//   # TENANT  t1_guarantee=BYTES t1_limit=BYTES t2_guarantee=BYTES t2_limit=BYTES
//   team-a    t1_guarantee=8GiB t1_limit=24GiB
//   *         t1_limit=4GiB              # every tenant not listed
//
// Sizes are integers with an optional suffix: K/M/G/T (powers of 1000), KiB/MiB/GiB/TiB
// (powers of 1024). Keys left out take the default's value ('*' line, or the flags' values
// given to ParseTenantQuotas). The default's guarantees must be 0 (an unknown number of
// tenants cannot each be guaranteed bytes), a guarantee may not exceed its limit, and the
// guarantees of the listed tenants must fit the tier (ValidateAgainstCapacity).
#ifndef KVTIER_CACHE_STORE_TENANT_QUOTA_H_
#define KVTIER_CACHE_STORE_TENANT_QUOTA_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace kvtier {

struct TenantQuota {
  uint64_t t1_guarantee = 0;
  uint64_t t1_limit = 0;  // 0: none
  uint64_t t2_guarantee = 0;
  uint64_t t2_limit = 0;  // 0: none
  bool operator==(const TenantQuota&) const = default;
};

struct TenantQuotas {
  TenantQuota defaults;
  absl::flat_hash_map<std::string, TenantQuota> tenants;

  // Today's single-tenant behaviour: no guarantee and no limit for anybody.
  bool enabled() const { return !tenants.empty() || defaults != TenantQuota{}; }
  const TenantQuota& For(std::string_view tenant) const;
  // INVALID_ARGUMENT when the guarantees of one tier add up to more than its capacity.
  absl::Status ValidateAgainstCapacity(uint64_t t1_bytes, uint64_t t2_bytes) const;
};

// "4GiB", "512M", "1048576". INVALID_ARGUMENT naming the text otherwise.
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

// The file's text (see above) over `defaults`. INVALID_ARGUMENT naming `source` and the
// line for anything malformed.
absl::StatusOr<TenantQuotas> ParseTenantQuotas(std::string_view text, std::string_view source,
                                               const TenantQuota& defaults);
// The same, read from a file; NOT_FOUND when it cannot be read.
absl::StatusOr<TenantQuotas> LoadTenantQuotaFile(const std::string& path,
                                                 const TenantQuota& defaults);

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_TENANT_QUOTA_H_
