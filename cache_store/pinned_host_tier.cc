#include "cache_store/pinned_host_tier.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"

namespace kvtier {

absl::StatusOr<std::unique_ptr<PinnedHostTier>> PinnedHostTier::Create(
    const PinnedHostTierOptions& options) {
  if (options.slot_bytes == 0) {
    return absl::InvalidArgumentError("T1 slot size must be > 0");
  }
  const uint64_t slot_bytes =
      (options.slot_bytes + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment;
  const uint64_t slots = options.capacity_bytes / slot_bytes;
  if (slots == 0) {
    return absl::InvalidArgumentError(absl::StrCat("T1 capacity of ", options.capacity_bytes,
                                                   " bytes holds no slot of ", slot_bytes,
                                                   " bytes"));
  }
  if (slots > UINT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("T1 would have ", slots, " slots; at most ", UINT32_MAX, " are supported"));
  }
  const size_t bytes = slots * slot_bytes;
  // Mapped first, then asked for transparent huge pages (every block copy walks megabytes
  // of it: 4 KiB pages would cost a TLB miss every 4 KiB), then committed whole, so the
  // store's memory use is fixed from start-up instead of growing as blocks arrive.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot map the T1 arena of ", bytes, " bytes: ", std::strerror(errno)));
  }
  (void)madvise(p, bytes, MADV_HUGEPAGE);  // advice: where THP is off, 4 KiB pages serve
  if (madvise(p, bytes, MADV_POPULATE_WRITE) != 0) {
    // Kernels before 5.14: touch every page instead.
    for (size_t off = 0; off < bytes; off += 4096) static_cast<volatile uint8_t*>(p)[off] = 0;
  }
  std::unique_ptr<PinnedHostTier> tier(new PinnedHostTier(
      static_cast<uint8_t*>(p), bytes, slot_bytes, static_cast<uint32_t>(slots)));
  if (options.lock_mode != MemoryLockMode::kNone) {
    absl::StatusOr<std::unique_ptr<HostMemoryLock>> lock = HostMemoryLock::Lock(p, bytes);
    if (lock.ok()) {
      tier->lock_ = *std::move(lock);
    } else if (options.lock_mode == MemoryLockMode::kRequired) {
      return lock.status();
    } else {
      KVTIER_LOG(WARNING) << "T1 arena runs unlocked: " << lock.status().message();
    }
  }
  return tier;
}

PinnedHostTier::PinnedHostTier(uint8_t* base, size_t mapped_bytes, uint64_t slot_bytes,
                               uint32_t slots)
    : base_(base),
      mapped_bytes_(mapped_bytes),
      slot_bytes_(slot_bytes),
      capacity_slots_(slots),
      allocated_(slots, false) {
  free_list_.reserve(slots);
  // Hand out low slots first: it keeps a lightly used arena's touched pages together.
  for (uint32_t s = slots; s > 0; --s) free_list_.push_back(s - 1);
}

PinnedHostTier::~PinnedHostTier() {
  lock_.reset();
  munmap(base_, mapped_bytes_);
}

std::optional<uint32_t> PinnedHostTier::Allocate() {
  if (free_list_.empty()) return std::nullopt;
  uint32_t slot = free_list_.back();
  free_list_.pop_back();
  allocated_[slot] = true;
  return slot;
}

void PinnedHostTier::Free(uint32_t slot) {
  KVTIER_CHECK(slot < capacity_slots_);
  KVTIER_CHECK(allocated_[slot]) << "double free of T1 slot " << slot;
  allocated_[slot] = false;
  free_list_.push_back(slot);
}

}  // namespace kvtier
