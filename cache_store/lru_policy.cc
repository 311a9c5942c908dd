#include "cache_store/lru_policy.h"

#include "cache_store/log.h"

namespace kvtier {

LruPolicy::LruPolicy(uint32_t capacity)
    : prev_(capacity, kNil),
      next_(capacity, kNil),
      resident_(capacity, 0),
      linked_(capacity, 0),
      partition_(capacity, 0),
      stamp_(capacity, 0) {}

void LruPolicy::OnResident(uint32_t handle, const BlockTraits& traits) {
  KVTIER_CHECK(handle < resident_.size() && !resident_[handle]) << "handle " << handle;
  resident_[handle] = 1;
  partition_[handle] = traits.partition;
  if (head_.size() <= traits.partition) {
    head_.resize(traits.partition + 1, kNil);
    tail_.resize(traits.partition + 1, kNil);
  }
}

void LruPolicy::OnAccess(uint32_t handle, const BlockTraits&) {
  KVTIER_CHECK(IsResident(handle)) << "handle " << handle;
  // A block that is not evictable now (leased, read) is pushed to the front when it
  // becomes evictable, which is later than this access.
  if (!linked_[handle]) return;
  Unlink(handle);
  PushFront(handle);
}

void LruPolicy::SetEvictable(uint32_t handle, bool evictable) {
  KVTIER_CHECK(IsResident(handle)) << "handle " << handle;
  if (evictable == static_cast<bool>(linked_[handle])) return;
  if (evictable) {
    linked_[handle] = 1;
    ++size_;
    PushFront(handle);
  } else {
    Unlink(handle);
    linked_[handle] = 0;
    --size_;
  }
}

void LruPolicy::OnLeave(uint32_t handle, bool) {
  if (!IsResident(handle)) return;
  if (linked_[handle]) SetEvictable(handle, false);
  resident_[handle] = 0;
}

bool LruPolicy::IsResident(uint32_t handle) const {
  return handle < resident_.size() && resident_[handle];
}

bool LruPolicy::IsEvictable(uint32_t handle) const {
  return handle < linked_.size() && linked_[handle];
}

std::optional<uint32_t> LruPolicy::Victim() const {
  std::optional<uint32_t> best;
  for (uint32_t t : tail_) {
    if (t != kNil && (!best || stamp_[t] < stamp_[*best])) best = t;
  }
  return best;
}

std::optional<uint32_t> LruPolicy::VictimOf(uint32_t partition) const {
  if (partition >= tail_.size() || tail_[partition] == kNil) {
    return std::nullopt;
  }
  return tail_[partition];
}

void LruPolicy::Unlink(uint32_t handle) {
  const uint32_t c = partition_[handle];
  uint32_t p = prev_[handle];
  uint32_t n = next_[handle];
  (p == kNil ? head_[c] : next_[p]) = n;
  (n == kNil ? tail_[c] : prev_[n]) = p;
  prev_[handle] = next_[handle] = kNil;
}

void LruPolicy::PushFront(uint32_t handle) {
  const uint32_t c = partition_[handle];
  prev_[handle] = kNil;
  next_[handle] = head_[c];
  (head_[c] == kNil ? tail_[c] : prev_[head_[c]]) = handle;
  head_[c] = handle;
  stamp_[handle] = ++clock_;
}

}  // namespace kvtier
