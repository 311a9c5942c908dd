#include "cache_store/pinned_host_tier.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"

namespace kvtier {

absl::StatusOr<std::unique_ptr<PinnedHostTier>> PinnedHostTier::Create(
    const PinnedHostTierOptions& options) {
  absl::StatusOr<SlabAllocator> slots =
      SlabAllocator::Create({.capacity_bytes = options.capacity_bytes,
                             .slab_bytes = options.slab_bytes,
                             .max_slot_bytes = options.max_block_bytes,
                             .min_slot_bytes = options.min_slot_bytes});
  if (!slots.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("T1: ", slots.status().message()));
  }
  const size_t bytes = slots->capacity_bytes();
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
  std::unique_ptr<PinnedHostTier> tier(
      new PinnedHostTier(static_cast<uint8_t*>(p), bytes, *std::move(slots)));
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

PinnedHostTier::PinnedHostTier(uint8_t* base, size_t mapped_bytes, SlabAllocator slots)
    : base_(base), mapped_bytes_(mapped_bytes), slots_(std::move(slots)) {}

PinnedHostTier::~PinnedHostTier() {
  lock_.reset();
  munmap(base_, mapped_bytes_);
}

}  // namespace kvtier
