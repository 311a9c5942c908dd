#include "cache_store/lru_policy.h"

#include "cache_store/log.h"

namespace kvtier {

LruPolicy::LruPolicy(uint32_t capacity)
    : lists_(capacity),
      resident_(capacity, 0),
      linked_(capacity, 0),
      partition_(capacity, 0) {}

void LruPolicy::OnResident(uint32_t handle, const BlockTraits& traits) {
  KVTIER_CHECK(handle < resident_.size() && !resident_[handle]) << "handle " << handle;
  resident_[handle] = 1;
  partition_[handle] = traits.partition;
}

void LruPolicy::OnAccess(uint32_t handle, const BlockTraits&) {
  KVTIER_CHECK(IsResident(handle)) << "handle " << handle;
  // A block that is not evictable now (leased, read) is pushed to the front when it
  // becomes evictable, which is later than this access.
  if (!linked_[handle]) return;
  lists_.Unlink(partition_[handle], handle);
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
    lists_.Unlink(partition_[handle], handle);
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

std::optional<uint32_t> LruPolicy::Victim() const { return lists_.OldestBack(); }

std::optional<uint32_t> LruPolicy::VictimOf(uint32_t partition) const {
  return lists_.Back(partition);
}

void LruPolicy::PushFront(uint32_t handle) {
  lists_.PushFront(partition_[handle], handle);
}

}  // namespace kvtier
