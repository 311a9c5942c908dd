#include "cache_store/lease_table.h"

#include "absl/strings/str_cat.h"

namespace kvtier {

LeaseTable::LeaseTable(size_t max_active, size_t remembered_expired)
    : max_active_(max_active), remembered_expired_(remembered_expired) {}

absl::StatusOr<uint64_t> LeaseTable::Grant(std::string tenant, std::vector<uint32_t> handles,
                                           absl::Time expires) {
  if (live_.size() >= max_active_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many active leases (", max_active_,
                     "); release leases after fetching or lower the lease TTL"));
  }
  uint64_t id;
  do {
    id = absl::Uniform<uint64_t>(bitgen_);
  } while (id == 0 || live_.contains(id) || expired_tenant_.contains(id));
  live_.emplace(id, Lease{id, std::move(tenant), std::move(handles), expires});
  expiry_queue_.emplace(expires, id);
  return id;
}

absl::Status LeaseTable::NotLive(uint64_t id, std::string_view tenant) const {
  auto it = expired_tenant_.find(id);
  if (it != expired_tenant_.end() && it->second == tenant) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", id, " expired; look the prompt up again"));
  }
  return absl::NotFoundError(absl::StrCat("unknown lease ", id));
}

absl::StatusOr<const Lease*> LeaseTable::Find(uint64_t id, std::string_view tenant) const {
  auto it = live_.find(id);
  if (it == live_.end() || it->second.tenant != tenant) return NotLive(id, tenant);
  return &it->second;
}

absl::StatusOr<std::vector<uint32_t>> LeaseTable::Release(uint64_t id, std::string_view tenant) {
  auto it = live_.find(id);
  if (it == live_.end() || it->second.tenant != tenant) return NotLive(id, tenant);
  std::vector<uint32_t> handles = std::move(it->second.handles);
  live_.erase(it);
  return handles;
}

std::vector<uint32_t> LeaseTable::ExpireUntil(absl::Time now) {
  std::vector<uint32_t> handles;
  while (!expiry_queue_.empty() && expiry_queue_.top().first <= now) {
    uint64_t id = expiry_queue_.top().second;
    expiry_queue_.pop();
    auto it = live_.find(id);
    if (it == live_.end()) continue;  // released earlier
    handles.insert(handles.end(), it->second.handles.begin(), it->second.handles.end());
    expired_tenant_.emplace(id, std::move(it->second.tenant));
    expired_order_.push_back(id);
    live_.erase(it);
    if (expired_order_.size() > remembered_expired_) {
      expired_tenant_.erase(expired_order_.front());
      expired_order_.pop_front();
    }
  }
  return handles;
}

}  // namespace kvtier
