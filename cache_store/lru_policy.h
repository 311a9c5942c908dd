// LruPolicy: evicts the evictable block least recently made resident, accessed or made
// evictable. The baseline that other policies are measured against; with one block per
// access it is exactly the LRU of ../shared/tools/trace_oracle.py. One recency list per
// partition (HandleLists): every operation is O(1) (Victim: O(partitions in use)), nothing
// allocates after a partition is first seen.
#ifndef KVTIER_CACHE_STORE_LRU_POLICY_H_
#define KVTIER_CACHE_STORE_LRU_POLICY_H_

#include <vector>

#include "cache_store/eviction_policy.h"
#include "cache_store/handle_lists.h"

namespace kvtier {

class LruPolicy final : public EvictionPolicy {
 public:
  explicit LruPolicy(uint32_t capacity);

  std::string_view name() const override { return "lru"; }
  bool leaves_only() const override { return false; }
  void OnResident(uint32_t handle, const BlockTraits& traits) override;
  void OnAccess(uint32_t handle, const BlockTraits& traits) override;
  void SetEvictable(uint32_t handle, bool evictable) override;
  void OnLeave(uint32_t handle, bool evicted) override;
  bool IsResident(uint32_t handle) const override;
  bool IsEvictable(uint32_t handle) const override;
  std::optional<uint32_t> Victim() const override;
  std::optional<uint32_t> VictimOf(uint32_t partition) const override;
  bool EvictsBefore(uint32_t a, uint32_t b) const override { return lists_.PushedBefore(a, b); }
  double ReuseScore(uint32_t) const override { return 1.0; }
  size_t evictable_size() const override { return size_; }

 private:
  void PushFront(uint32_t handle);

  HandleLists lists_;  // by partition
  std::vector<uint8_t> resident_;
  std::vector<uint8_t> linked_;  // evictable: in its partition's list
  std::vector<uint32_t> partition_;
  size_t size_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_LRU_POLICY_H_
