// PrefixIndex: block key → handle of the committed block, and longest-prefix match.
//
// Because keys are chained (block_key.h), a prompt's cached prefix is found by walking its
// keys in order until the first one missing: O(blocks) hash look-ups, no per-token work
// after hashing. A child may be present while its parent is not (the parent was evicted);
// such a child is unreachable by prefix match until the parent is stored again.
// Not thread-safe: the owner serialises access.
#ifndef KVTIER_CACHE_STORE_PREFIX_INDEX_H_
#define KVTIER_CACHE_STORE_PREFIX_INDEX_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "cache_store/block_key.h"

namespace kvtier {

class PrefixIndex {
 public:
  // False (and no change) when the key is already present.
  bool Insert(const BlockKey& key, uint32_t handle);
  // False when the key was not present.
  bool Erase(const BlockKey& key);
  std::optional<uint32_t> Find(const BlockKey& key) const;

  // Handles of the longest run of leading keys that are present.
  std::vector<uint32_t> MatchPrefix(std::span<const BlockKey> keys) const;

  size_t size() const { return map_.size(); }

 private:
  absl::flat_hash_map<BlockKey, uint32_t> map_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_PREFIX_INDEX_H_
