// LeaseTable: short-lived leases that keep the blocks matched by a Lookup resident until
// the following Fetch (or until they expire).
//
// A lease belongs to one tenant; another tenant's lease id behaves like an unknown one.
// Ids are random 64-bit values, so they cannot be guessed. Recently expired leases are
// remembered (a bounded number) so that a late Fetch is told its lease *expired* rather
// than that it never existed. The table only records leases: the owner keeps the blocks'
// reference counts in step with Grant / Release / ExpireUntil.
// Not thread-safe: the owner serialises access.
#ifndef KVTIER_CACHE_STORE_LEASE_TABLE_H_
#define KVTIER_CACHE_STORE_LEASE_TABLE_H_

#include <cstdint>
#include <deque>
#include <queue>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvtier {

struct Lease {
  uint64_t id = 0;
  std::string tenant;
  std::vector<uint32_t> handles;
  absl::Time expires;
};

class LeaseTable {
 public:
  explicit LeaseTable(size_t max_active, size_t remembered_expired = 16384);

  // RESOURCE_EXHAUSTED when max_active leases are live.
  absl::StatusOr<uint64_t> Grant(std::string tenant, std::vector<uint32_t> handles,
                                 absl::Time expires);
  // FAILED_PRECONDITION for a lease of this tenant that expired recently, NOT_FOUND for
  // anything else that is not a live lease of this tenant.
  absl::StatusOr<const Lease*> Find(uint64_t id, std::string_view tenant) const;
  // Ends a live lease and returns its handles. Errors as Find.
  absl::StatusOr<std::vector<uint32_t>> Release(uint64_t id, std::string_view tenant);
  // Ends every lease whose expiry is <= now; returns their handles (with repeats).
  std::vector<uint32_t> ExpireUntil(absl::Time now);

  size_t active() const { return live_.size(); }

 private:
  absl::Status NotLive(uint64_t id, std::string_view tenant) const;

  size_t max_active_;
  size_t remembered_expired_;
  absl::flat_hash_map<uint64_t, Lease> live_;
  // (expiry, id), earliest first. Entries of released leases are skipped when popped.
  std::priority_queue<std::pair<absl::Time, uint64_t>, std::vector<std::pair<absl::Time, uint64_t>>,
                      std::greater<>>
      expiry_queue_;
  absl::flat_hash_map<uint64_t, std::string> expired_tenant_;
  std::deque<uint64_t> expired_order_;
  absl::BitGen bitgen_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_LEASE_TABLE_H_
