// HandleLists: doubly linked lists of block handles, threaded through arrays indexed by
// handle (a handle is in at most one list at a time), the lists numbered densely and created
// on first use. The recency order of the LRU-family eviction policies (lru_policy.h: a list
// per partition; slru_policy.h: two per partition). Every operation O(1); nothing allocates
// once a list number has been seen. Not thread-safe (the policies run under the store's lock).
#ifndef KVTIER_CACHE_STORE_HANDLE_LISTS_H_
#define KVTIER_CACHE_STORE_HANDLE_LISTS_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace kvtier {

class HandleLists {
 public:
  explicit HandleLists(uint32_t handles) : prev_(handles, kNil), next_(handles, kNil) {}

  // REQUIRES: `handle` is in no list.
  void PushFront(uint32_t list, uint32_t handle) {
    if (head_.size() <= list) {
      head_.resize(list + 1, kNil);
      tail_.resize(list + 1, kNil);
    }
    prev_[handle] = kNil;
    next_[handle] = head_[list];
    (head_[list] == kNil ? tail_[list] : prev_[head_[list]]) = handle;
    head_[list] = handle;
  }
  // REQUIRES: `handle` is in `list`.
  void Unlink(uint32_t list, uint32_t handle) {
    const uint32_t p = prev_[handle];
    const uint32_t n = next_[handle];
    (p == kNil ? head_[list] : next_[p]) = n;
    (n == kNil ? tail_[list] : prev_[n]) = p;
    prev_[handle] = next_[handle] = kNil;
  }
  // The least recently pushed handle of `list`, if any.
  std::optional<uint32_t> Back(uint32_t list) const {
    if (list >= tail_.size() || tail_[list] == kNil) return std::nullopt;
    return tail_[list];
  }
  // Lists numbered so far (some may be empty).
  uint32_t lists() const { return static_cast<uint32_t>(tail_.size()); }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  std::vector<uint32_t> prev_;
  std::vector<uint32_t> next_;
  std::vector<uint32_t> head_;  // by list: most recent
  std::vector<uint32_t> tail_;  // by list: least recent
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_HANDLE_LISTS_H_
