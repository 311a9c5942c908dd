// EvictionPolicy: decides which evictable block leaves a full tier first.
//
// The store tells the policy which blocks are evictable: a block is Inserted when it
// becomes evictable (committed, no lease, no reader, not pinned) and Erased when it stops
// being evictable or leaves the store, so Victim() never names a protected block.
// Touch() reports a hit on an evictable block. Blocks are named by dense handles in
// [0, capacity) given at construction, so policies can keep per-block state in arrays.
//
// Every call is O(1) or O(log n). Not thread-safe: the store calls it under its mutex.
#ifndef KVTIER_CACHE_STORE_EVICTION_POLICY_H_
#define KVTIER_CACHE_STORE_EVICTION_POLICY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kvtier {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;

  virtual std::string_view name() const = 0;
  // REQUIRES: handle < capacity and not currently held by the policy.
  virtual void Insert(uint32_t handle) = 0;
  // REQUIRES: handle is held by the policy.
  virtual void Touch(uint32_t handle) = 0;
  // No-op when the handle is not held.
  virtual void Erase(uint32_t handle) = 0;
  virtual bool Contains(uint32_t handle) const = 0;
  // The block to evict next (not removed), or nullopt when nothing is evictable.
  virtual std::optional<uint32_t> Victim() const = 0;
  virtual size_t size() const = 0;
};

// Policies by name: "lru". INVALID_ARGUMENT for an unknown name.
absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name,
                                                                   uint32_t capacity);

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_EVICTION_POLICY_H_
