#include "cache_store/return_history.h"

namespace kvtier {

ReturnHistory::ReturnHistory(size_t capacity) : ring_(capacity, 0), live_(capacity, false) {
  index_.reserve(capacity);
}

void ReturnHistory::Insert(uint64_t fingerprint) {
  if (ring_.empty()) return;
  if (live_[next_]) {  // forget the oldest record, unless its key was recorded again since
    auto it = index_.find(ring_[next_]);
    if (it != index_.end() && it->second == next_) index_.erase(it);
  }
  ring_[next_] = fingerprint;
  live_[next_] = true;
  index_[fingerprint] = next_;
  next_ = (next_ + 1) % ring_.size();
}

bool ReturnHistory::Contains(uint64_t fingerprint) const { return index_.contains(fingerprint); }

bool ReturnHistory::Take(uint64_t fingerprint) {
  auto it = index_.find(fingerprint);
  if (it == index_.end()) return false;
  live_[it->second] = false;
  index_.erase(it);
  return true;
}

}  // namespace kvtier
