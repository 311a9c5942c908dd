#include "cache_store/lru_policy.h"

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"

namespace kvtier {

LruPolicy::LruPolicy(uint32_t capacity)
    : prev_(capacity, kNil), next_(capacity, kNil), present_(capacity, false) {}

void LruPolicy::Insert(uint32_t handle) {
  KVTIER_CHECK(handle < present_.size() && !present_[handle]) << "handle " << handle;
  present_[handle] = true;
  ++size_;
  PushFront(handle);
}

void LruPolicy::Touch(uint32_t handle) {
  KVTIER_CHECK(handle < present_.size() && present_[handle]) << "handle " << handle;
  Unlink(handle);
  PushFront(handle);
}

void LruPolicy::Erase(uint32_t handle) {
  if (handle >= present_.size() || !present_[handle]) return;
  Unlink(handle);
  present_[handle] = false;
  --size_;
}

bool LruPolicy::Contains(uint32_t handle) const {
  return handle < present_.size() && present_[handle];
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

absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name,
                                                                   uint32_t capacity) {
  if (name == "lru") return std::make_unique<LruPolicy>(capacity);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown eviction policy \"", std::string(name), "\"; known: lru"));
}

}  // namespace kvtier
