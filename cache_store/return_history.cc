#include "cache_store/return_history.h"

namespace kvtier {

ReturnHistory::ReturnHistory(size_t capacity)
    : ring_(capacity, 0), tags_(capacity, 0), live_(capacity, false) {
  index_.reserve(capacity);
}

std::optional<uint16_t> ReturnHistory::Insert(uint64_t fingerprint, uint16_t tag) {
  if (ring_.empty()) return std::nullopt;
  std::optional<uint16_t> forgotten;
  if (live_[next_]) {  // forget the oldest record, unless its key was recorded again since
    auto it = index_.find(ring_[next_]);
    if (it != index_.end() && it->second == next_) {
      index_.erase(it);
      forgotten = tags_[next_];
    }
  }
  ring_[next_] = fingerprint;
  tags_[next_] = tag;
  live_[next_] = true;
  if (auto [it, inserted] = index_.try_emplace(fingerprint, next_); !inserted) {
    live_[it->second] = false;  // the older record of the key is superseded, not forgotten
    it->second = next_;
  }
  next_ = (next_ + 1) % ring_.size();
  return forgotten;
}

bool ReturnHistory::Contains(uint64_t fingerprint) const { return index_.contains(fingerprint); }

std::optional<uint16_t> ReturnHistory::Take(uint64_t fingerprint) {
  auto it = index_.find(fingerprint);
  if (it == index_.end()) return std::nullopt;
  live_[it->second] = false;
  const uint16_t tag = tags_[it->second];
  index_.erase(it);
  return tag;
}

}  // namespace kvtier
