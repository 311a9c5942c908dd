// HandleLists: doubly linked lists of block handles, threaded through arrays indexed by
// handle (a handle is in at most one list at a time), the lists numbered densely and created
// on first use. The recency order of the LRU-family eviction policies (lru_policy.h: a list
// per partition; slru_policy.h: two per partition). Every push is stamped from one clock, so
// the backs of different lists compare (OldestBack). Every operation O(1) but OldestBack
// (O(lists)); nothing allocates once a list number has been seen. Not thread-safe (the
// policies run under the store's lock).
#ifndef KVTIER_CACHE_STORE_HANDLE_LISTS_H_
#define KVTIER_CACHE_STORE_HANDLE_LISTS_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace kvtier {

class HandleLists {
 public:
  explicit HandleLists(uint32_t handles)
      : prev_(handles, kNil), next_(handles, kNil), stamp_(handles, 0) {}

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
    stamp_[handle] = ++clock_;
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
  // Of the backs of lists first, first + stride, first + 2 * stride, ...: the one pushed
  // longest ago, if any.
  std::optional<uint32_t> OldestBack(uint32_t first = 0, uint32_t stride = 1) const {
    std::optional<uint32_t> best;
    for (uint32_t list = first; list < tail_.size(); list += stride) {
      const uint32_t t = tail_[list];
      if (t != kNil && (!best || stamp_[t] < stamp_[*best])) best = t;
    }
    return best;
  }
  // Whether `a` was last pushed before `b` (both pushed at least once).
  bool PushedBefore(uint32_t a, uint32_t b) const { return stamp_[a] < stamp_[b]; }
  // Lists numbered so far (some may be empty).
  uint32_t lists() const { return static_cast<uint32_t>(tail_.size()); }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  std::vector<uint32_t> prev_;
  std::vector<uint32_t> next_;
  std::vector<uint32_t> head_;  // by list: most recent
  std::vector<uint32_t> tail_;  // by list: least recent
  std::vector<uint64_t> stamp_;  // by handle: when it was last pushed
  uint64_t clock_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_HANDLE_LISTS_H_
