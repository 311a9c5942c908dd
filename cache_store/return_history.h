// ReturnHistory: the keys of blocks that left the store without being written to T2, so
// that a block Put again later is known to have *returned* (docs/policy.md, "T2
// admission"). T2 admits a T1 victim only when it has shown reuse: a hit while resident,
// or a return recorded here. Most KV blocks are never used again; this keeps them off the
// SSD without losing the ones that come back, after their first return.
//
// A bounded FIFO of 64-bit key fingerprints (the oldest is forgotten first) and a hash set
// over it: Insert and Contains are O(1), memory is about 30 bytes per remembered key. Each
// record carries a small tag that Take and Insert hand back (ReturnPredictor keeps a
// block's class there, to score the record as a return or, once forgotten, as none). A
// fingerprint collision can only make a one-time block look returned (one extra SSD
// write), never lose a block. Not thread-safe: the store calls it under its mutex.
#ifndef KVTIER_CACHE_STORE_RETURN_HISTORY_H_
#define KVTIER_CACHE_STORE_RETURN_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace kvtier {

class ReturnHistory {
 public:
  // Remembers the last `capacity` keys inserted (0: remembers nothing).
  explicit ReturnHistory(size_t capacity);

  // Remembers the key with its tag. Returns the tag of the oldest record when this forgets
  // it unreturned (not taken, and its key not inserted again since).
  std::optional<uint16_t> Insert(uint64_t fingerprint, uint16_t tag = 0);
  // Whether the key is remembered; Take also forgets it (a return is counted once) and
  // returns its tag.
  bool Contains(uint64_t fingerprint) const;
  std::optional<uint16_t> Take(uint64_t fingerprint);

  size_t size() const { return index_.size(); }
  size_t capacity() const { return ring_.size(); }

 private:
  std::vector<uint64_t> ring_;
  std::vector<uint16_t> tags_;
  std::vector<bool> live_;
  size_t next_ = 0;
  // fingerprint -> ring position of its newest record.
  absl::flat_hash_map<uint64_t, size_t> index_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_RETURN_HISTORY_H_
