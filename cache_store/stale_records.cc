#include "cache_store/stale_records.h"

#include <algorithm>

namespace kvtier {

void StaleRecords::Add(uint32_t slot, const BlockKey& key, int cls, uint64_t slot_bytes) {
  by_slot_[slot] = Record{key, cls, slot_bytes};
  by_key_[key].push_back(slot);
  if (by_class_.size() <= static_cast<size_t>(cls)) by_class_.resize(cls + 1);
  by_class_[cls].push_back(slot);
  bytes_ += slot_bytes;
}

std::optional<uint32_t> StaleRecords::Take(int cls) {
  if (cls < 0 || static_cast<size_t>(cls) >= by_class_.size()) return std::nullopt;
  std::vector<uint32_t>& stack = by_class_[cls];
  while (!stack.empty()) {
    const uint32_t slot = stack.back();
    stack.pop_back();
    auto it = by_slot_.find(slot);
    if (it == by_slot_.end() || it->second.cls != cls) continue;  // removed since
    Remove(slot);
    return slot;
  }
  return std::nullopt;
}

bool StaleRecords::Remove(uint32_t slot) {
  auto it = by_slot_.find(slot);
  if (it == by_slot_.end()) return false;
  auto of_key = by_key_.find(it->second.key);
  if (of_key != by_key_.end()) {
    std::erase(of_key->second, slot);
    if (of_key->second.empty()) by_key_.erase(of_key);
  }
  bytes_ -= it->second.slot_bytes;
  by_slot_.erase(it);
  return true;
}

std::vector<uint32_t> StaleRecords::OfKey(const BlockKey& key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? std::vector<uint32_t>{} : it->second;
}

}  // namespace kvtier
