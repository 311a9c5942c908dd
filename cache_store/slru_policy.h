// SlruPolicy: segmented LRU for the SSD tier. A block that has shown reuse (a hit, or a Put
// after it was evicted: BlockTraits::reused) enters the *protected* segment; any other block
// enters *probation*. Victims come from probation (least recent first) and from protected
// only when probation is empty; when protected holds more than (1 - probation_share) of the
// blocks resident in the tier, its least recent block moves to the front of probation (a
// second chance, not an eviction). The share is of the blocks resident, not of a capacity
// in blocks: a tier of many block sizes has no single one.
//
// Why, for T2: with exclusive tiers a T2 block is never hit in place (a hit promotes it to
// T1), so plain LRU over T2 is FIFO over demotions, and the three quarters of KV blocks that
// are never used again push out the ones that come back. Probation keeps room for a block's
// first return (`probation_share` of the blocks there); protected keeps the blocks that have
// come back before, which come back again. docs/policy.md has the measurements.
//
// Partitions as in LruPolicy: a recency list per segment and partition (HandleLists, list
// 2 * partition + segment); every operation O(1) but Victim and the protected overflow,
// O(partitions in use).
#ifndef KVTIER_CACHE_STORE_SLRU_POLICY_H_
#define KVTIER_CACHE_STORE_SLRU_POLICY_H_

#include <array>
#include <vector>

#include "cache_store/eviction_policy.h"
#include "cache_store/handle_lists.h"

namespace kvtier {

class SlruPolicy final : public EvictionPolicy {
 public:
  // REQUIRES: 0 < probation_share <= 1.
  explicit SlruPolicy(uint32_t capacity, double probation_share = 0.7);

  std::string_view name() const override { return "slru"; }
  bool leaves_only() const override { return false; }
  void OnResident(uint32_t handle, const BlockTraits& traits) override;
  void OnAccess(uint32_t handle, const BlockTraits& traits) override;
  void SetEvictable(uint32_t handle, bool evictable) override;
  void OnLeave(uint32_t handle, bool evicted) override;
  bool IsResident(uint32_t handle) const override;
  bool IsEvictable(uint32_t handle) const override;
  std::optional<uint32_t> Victim() const override;
  std::optional<uint32_t> VictimOf(uint32_t partition) const override;
  bool EvictsBefore(uint32_t a, uint32_t b) const override;
  double ReuseScore(uint32_t handle) const override;
  size_t evictable_size() const override { return size_; }

  bool IsProtected(uint32_t handle) const { return handle < segment_.size() && segment_[handle]; }
  size_t protected_size() const { return count_[kProtected]; }

 private:
  static constexpr int kProbation = 0;
  static constexpr int kProtected = 1;

  uint32_t ListOf(uint32_t handle) const { return 2 * partition_[handle] + segment_[handle]; }
  void Unlink(uint32_t handle);
  void PushFront(uint32_t handle);
  // The least recent evictable block of a segment over all partitions.
  std::optional<uint32_t> OldestOf(int segment) const;
  // Moves protected blocks beyond its share to probation.
  void Rebalance();

  const double protected_share_;
  size_t resident_count_ = 0;
  HandleLists lists_;
  std::vector<uint8_t> resident_;
  std::vector<uint8_t> linked_;   // evictable: in its segment's list
  std::vector<uint8_t> segment_;  // kProbation or kProtected
  std::vector<uint32_t> partition_;
  std::array<size_t, 2> count_{};  // linked blocks by segment
  size_t size_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_SLRU_POLICY_H_
