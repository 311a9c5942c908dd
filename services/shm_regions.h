// ShmRegions: the client memory regions attached to this store, the store's side of the
// same-node data plane (docs/api.md "Same-node data plane").
//
// A client on the store's node hands the store a memfd (over the attach socket,
// services/shm_attach_server.h); Attach checks it and maps it, and Fetch and Put then copy
// block payloads straight between T1 and the mapping: one copy on the store's side, none on
// the client's. The checks are what keep a misbehaving client from hurting the store:
//  - only a memfd on shmem (not hugetlbfs) sealed with F_SEAL_SHRINK is accepted, so the
//    file can never become shorter than the mapping: a client that truncates it gets
//    EPERM, and the store's accesses can never fault (no SIGBUS);
//  - the mapping is the store's own (MAP_SHARED, populated at attach), so a client that
//    unmaps, closes or dies changes nothing for copies in flight: a region in use is kept
//    alive by its users (shared_ptr) until the last copy ends, then unmapped;
//  - a region belongs to the tenant whose credentials attached it: Find returns it only to
//    that tenant (another tenant's id is NOT_FOUND, like an unknown one), so a client's
//    memory only ever receives its own tenant's blocks, and a Put only reads from memory
//    of the tenant it stores for;
//  - a client that writes into its region while the store copies corrupts only its own
//    view: every byte is verified against the layer checksums taken at Put, by the client
//    (Fetch) or the store (Put, hashing what landed in T1).
//  - a region must be fully allocated when it is attached (the client reserves its pages
//    with fallocate), so mapping it allocates nothing in the store. A client that later
//    punches holes into it makes the store's next writes there allocate pages again (shmem
//    cannot seal against that without sealing writes); the limits below bound that memory
//    as they bound the regions themselves (their count and total size).
// Thread-safe.
#ifndef KVTIER_SERVICES_SHM_REGIONS_H_
#define KVTIER_SERVICES_SHM_REGIONS_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace kvtier {

// One attached region, mapped read-write in the store. Unmapped when the last user lets go.
class AttachedRegion {
 public:
  AttachedRegion(std::string tenant, uint8_t* base, uint64_t size)
      : tenant_(std::move(tenant)), base_(base), size_(size) {}
  ~AttachedRegion();
  AttachedRegion(const AttachedRegion&) = delete;
  AttachedRegion& operator=(const AttachedRegion&) = delete;

  const std::string& tenant() const { return tenant_; }
  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }

  // OK when block i (sizes[i] bytes) fits at offsets[i] for every block and, with
  // `disjoint`, no two blocks overlap; INVALID_ARGUMENT naming the first that does not.
  absl::Status CheckPlacement(std::span<const uint64_t> offsets, std::span<const uint64_t> sizes,
                              bool disjoint) const;

 private:
  const std::string tenant_;
  uint8_t* const base_;
  const uint64_t size_;
};

struct ShmRegionsOptions {
  size_t max_regions = 256;
  // The sum of the sizes of all attached regions.
  uint64_t max_total_bytes = uint64_t{64} << 30;
};

class ShmRegions {
 public:
  static constexpr size_t kIdBytes = 16;

  explicit ShmRegions(ShmRegionsOptions options) : options_(options) {}

  // Checks and maps `fd` (which stays the caller's to close) for `tenant`; returns the
  // region's id. INVALID_ARGUMENT for a descriptor that is not a read-write, fully
  // allocated memfd sealed with F_SEAL_SHRINK (and not against writes), or that is empty;
  // RESOURCE_EXHAUSTED past the limits or when it cannot be mapped.
  absl::StatusOr<std::string> Attach(int fd, std::string tenant) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the region: new calls cannot find it; calls holding it finish first.
  void Detach(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // The region `id` if `tenant` attached it; NOT_FOUND otherwise (unknown, detached, or
  // another tenant's: the same answer).
  absl::StatusOr<std::shared_ptr<const AttachedRegion>> Find(std::string_view tenant,
                                                             std::string_view id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  size_t attached() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t attached_bytes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const ShmRegionsOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const AttachedRegion>> regions_
      ABSL_GUARDED_BY(mu_);
  // Attached regions and attaches under way, and their bytes.
  size_t reserved_regions_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_SHM_REGIONS_H_
