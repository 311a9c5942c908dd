// LruPolicy: evicts the evictable block least recently inserted or touched. The baseline
// that other policies are measured against. An intrusive doubly linked list over arrays
// indexed by handle: every operation is O(1) and allocates nothing.
#ifndef KVTIER_CACHE_STORE_LRU_POLICY_H_
#define KVTIER_CACHE_STORE_LRU_POLICY_H_

#include <vector>

#include "cache_store/eviction_policy.h"

namespace kvtier {

class LruPolicy final : public EvictionPolicy {
 public:
  explicit LruPolicy(uint32_t capacity);

  std::string_view name() const override { return "lru"; }
  void Insert(uint32_t handle) override;
  void Touch(uint32_t handle) override;
  void Erase(uint32_t handle) override;
  bool Contains(uint32_t handle) const override;
  std::optional<uint32_t> Victim() const override;
  size_t size() const override { return size_; }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;

  void Unlink(uint32_t handle);
  void PushFront(uint32_t handle);

  std::vector<uint32_t> prev_;
  std::vector<uint32_t> next_;
  std::vector<bool> present_;
  uint32_t head_ = kNil;  // most recent
  uint32_t tail_ = kNil;  // least recent
  size_t size_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_LRU_POLICY_H_
