#include "cache_store/lru_policy.h"

#include "cache_store/log.h"

namespace kvtier {

LruPolicy::LruPolicy(uint32_t capacity)
    : prev_(capacity, kNil), next_(capacity, kNil), resident_(capacity, 0), linked_(capacity, 0) {}

void LruPolicy::OnResident(uint32_t handle, const BlockTraits&) {
  KVTIER_CHECK(handle < resident_.size() && !resident_[handle]) << "handle " << handle;
  resident_[handle] = 1;
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
  if (tail_ == kNil) return std::nullopt;
  return tail_;
}

void LruPolicy::Unlink(uint32_t handle) {
  uint32_t p = prev_[handle];
  uint32_t n = next_[handle];
  (p == kNil ? head_ : next_[p]) = n;
  (n == kNil ? tail_ : prev_[n]) = p;
  prev_[handle] = next_[handle] = kNil;
}

void LruPolicy::PushFront(uint32_t handle) {
  prev_[handle] = kNil;
  next_[handle] = head_;
  (head_ == kNil ? tail_ : prev_[head_]) = handle;
  head_ = handle;
}

}  // namespace kvtier
