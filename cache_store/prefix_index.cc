#include "cache_store/prefix_index.h"

namespace kvtier {

bool PrefixIndex::Insert(const BlockKey& key, uint32_t handle) {
  return map_.try_emplace(key, handle).second;
}

bool PrefixIndex::Erase(const BlockKey& key) { return map_.erase(key) > 0; }

std::optional<uint32_t> PrefixIndex::Find(const BlockKey& key) const {
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

std::vector<uint32_t> PrefixIndex::MatchPrefix(std::span<const BlockKey> keys) const {
  std::vector<uint32_t> handles;
  for (const BlockKey& key : keys) {
    auto it = map_.find(key);
    if (it == map_.end()) break;
    handles.push_back(it->second);
  }
  return handles;
}

}  // namespace kvtier
