#include "cache_store/slru_policy.h"

#include <algorithm>
#include <cmath>

#include "cache_store/log.h"

namespace kvtier {

SlruPolicy::SlruPolicy(uint32_t capacity, double probation_share)
    : protected_share_(1.0 - probation_share),
      lists_(capacity),
      resident_(capacity, 0),
      linked_(capacity, 0),
      segment_(capacity, kProbation),
      partition_(capacity, 0) {
  KVTIER_CHECK(probation_share > 0 && probation_share <= 1) << probation_share;
}

void SlruPolicy::OnResident(uint32_t handle, const BlockTraits& traits) {
  KVTIER_CHECK(handle < resident_.size() && !resident_[handle]) << "handle " << handle;
  resident_[handle] = 1;
  ++resident_count_;
  segment_[handle] = traits.reused ? kProtected : kProbation;
  partition_[handle] = traits.partition;
}

void SlruPolicy::OnAccess(uint32_t handle, const BlockTraits&) {
  KVTIER_CHECK(IsResident(handle)) << "handle " << handle;
  if (!linked_[handle]) {
    segment_[handle] = kProtected;  // linked there when it becomes evictable
    return;
  }
  Unlink(handle);
  segment_[handle] = kProtected;
  PushFront(handle);
  Rebalance();
}

void SlruPolicy::SetEvictable(uint32_t handle, bool evictable) {
  KVTIER_CHECK(IsResident(handle)) << "handle " << handle;
  if (evictable == static_cast<bool>(linked_[handle])) return;
  if (evictable) {
    linked_[handle] = 1;
    ++size_;
    PushFront(handle);
    Rebalance();
  } else {
    Unlink(handle);
    linked_[handle] = 0;
    --size_;
  }
}

void SlruPolicy::OnLeave(uint32_t handle, bool) {
  if (!IsResident(handle)) return;
  if (linked_[handle]) SetEvictable(handle, false);
  resident_[handle] = 0;
  --resident_count_;
}

bool SlruPolicy::IsResident(uint32_t handle) const {
  return handle < resident_.size() && resident_[handle];
}

bool SlruPolicy::IsEvictable(uint32_t handle) const {
  return handle < linked_.size() && linked_[handle];
}

std::optional<uint32_t> SlruPolicy::OldestOf(int segment) const {
  return lists_.OldestBack(segment, 2);
}

std::optional<uint32_t> SlruPolicy::Victim() const {
  if (std::optional<uint32_t> v = OldestOf(kProbation)) return v;
  return OldestOf(kProtected);
}

std::optional<uint32_t> SlruPolicy::VictimOf(uint32_t partition) const {
  if (std::optional<uint32_t> v = lists_.Back(2 * partition + kProbation)) return v;
  return lists_.Back(2 * partition + kProtected);
}

bool SlruPolicy::EvictsBefore(uint32_t a, uint32_t b) const {
  if (segment_[a] != segment_[b]) return segment_[a] == kProbation;
  return lists_.PushedBefore(a, b);
}

double SlruPolicy::ReuseScore(uint32_t handle) const {
  return IsProtected(handle) ? 1.0 : 0.5;
}

void SlruPolicy::Rebalance() {
  const auto limit =
      static_cast<size_t>(std::ceil(protected_share_ * static_cast<double>(resident_count_)));
  while (count_[kProtected] > limit) {
    const std::optional<uint32_t> oldest = OldestOf(kProtected);
    if (!oldest) return;
    Unlink(*oldest);
    segment_[*oldest] = kProbation;
    PushFront(*oldest);
  }
}

void SlruPolicy::Unlink(uint32_t handle) {
  lists_.Unlink(ListOf(handle), handle);
  --count_[segment_[handle]];
}

void SlruPolicy::PushFront(uint32_t handle) {
  lists_.PushFront(ListOf(handle), handle);
  ++count_[segment_[handle]];
}

}  // namespace kvtier
