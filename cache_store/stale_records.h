// StaleRecords: the T2 slots whose record is still valid on the disk but whose block has
// left them (a promotion moved it to T1; a recovered second copy). Bookkeeping only: the
// store keeps such slots allocated, reuses them before it evicts anything (Take), and
// overwrites their headers when their key is deleted (OfKey) or their slab changes class,
// so that a restart cannot bring a deleted block back (block_store.h, MarkStaleT2).
//
// Take is O(1) amortized (a stack per size class, entries removed since skipped); Add,
// Remove and OfKey O(1) expected. Not thread-safe: the store calls it under its lock.
#ifndef KVTIER_CACHE_STORE_STALE_RECORDS_H_
#define KVTIER_CACHE_STORE_STALE_RECORDS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "cache_store/block_key.h"

namespace kvtier {

class StaleRecords {
 public:
  // `slot` (of size class `cls`, `slot_bytes` long) holds a valid record of `key`.
  void Add(uint32_t slot, const BlockKey& key, int cls, uint64_t slot_bytes);
  // A stale slot of class `cls`, no longer listed, or nullopt.
  std::optional<uint32_t> Take(int cls);
  // Unlists `slot`; false when it was not stale.
  bool Remove(uint32_t slot);
  // The stale slots holding a record of `key`.
  std::vector<uint32_t> OfKey(const BlockKey& key) const;
  // Bytes of the slots listed (free space the allocator counts as used).
  uint64_t bytes() const { return bytes_; }

 private:
  struct Record {
    BlockKey key;
    int cls;
    uint64_t slot_bytes;
  };
  absl::flat_hash_map<uint32_t, Record> by_slot_;
  absl::flat_hash_map<BlockKey, std::vector<uint32_t>> by_key_;
  std::vector<std::vector<uint32_t>> by_class_;  // stacks; slots no longer listed skipped
  uint64_t bytes_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_STALE_RECORDS_H_
