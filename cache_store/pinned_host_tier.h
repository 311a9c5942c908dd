// PinnedHostTier (T1): one preallocated arena in host memory, cut into slots of many sizes.
//
// The arena is mapped, pre-faulted and (by default) locked once at creation and never
// grows. Its slots come from a SlabAllocator (cache_store/slab_allocator.h): size classes of
// equal slabs, so blocks of every layout up to max_block_bytes share it with bounded waste.
// Slots of 64 KiB and more are 4 KiB aligned, so they can be the source or target of
// direct I/O and DMA.
//
// Thread-compatible: the allocator must be used under the owner's lock (BlockStore holds
// its mutex); reading and writing a slot's bytes needs no lock while the owner holds it.
#ifndef KVTIER_CACHE_STORE_PINNED_HOST_TIER_H_
#define KVTIER_CACHE_STORE_PINNED_HOST_TIER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "cache_store/host_memory_lock.h"
#include "cache_store/slab_allocator.h"

namespace kvtier {

enum class MemoryLockMode {
  kRequired,    // fail creation unless the arena can be pinned/locked
  kBestEffort,  // lock if possible, otherwise run unlocked (reported by locked())
  kNone,        // never lock (tests, small dev runs)
};

struct PinnedHostTierOptions {
  uint64_t capacity_bytes = uint64_t{1} << 30;
  // 0: the defaults of SlabAllocatorOptions (16 MiB blocks, 64 MiB slabs, less for small
  // arenas).
  uint64_t max_block_bytes = 0;
  uint64_t slab_bytes = 0;
  // The smallest slot: blocks smaller than this take a slot of this size.
  uint64_t min_slot_bytes = 256;
  MemoryLockMode lock_mode = MemoryLockMode::kBestEffort;
};

class PinnedHostTier {
 public:
  // INVALID_ARGUMENT when the sizes make no slab (SlabAllocator::Create); RESOURCE_EXHAUSTED
  // when the memory cannot be mapped, or cannot be locked under kRequired.
  static absl::StatusOr<std::unique_ptr<PinnedHostTier>> Create(
      const PinnedHostTierOptions& options);

  ~PinnedHostTier();
  PinnedHostTier(const PinnedHostTier&) = delete;
  PinnedHostTier& operator=(const PinnedHostTier&) = delete;

  SlabAllocator& slots() { return slots_; }
  const SlabAllocator& slots() const { return slots_; }
  uint8_t* SlotData(uint32_t slot) const { return base_ + slots_.Offset(slot); }

  uint64_t capacity_bytes() const { return slots_.capacity_bytes(); }
  uint64_t max_block_bytes() const { return slots_.max_slot_bytes(); }
  bool locked() const { return lock_ != nullptr; }
  // "cuda_host_register", "mlock" or "none".
  const char* lock_method() const { return lock_ ? lock_->MethodName() : "none"; }

 private:
  PinnedHostTier(uint8_t* base, size_t mapped_bytes, SlabAllocator slots);

  uint8_t* base_;
  size_t mapped_bytes_;
  SlabAllocator slots_;
  std::unique_ptr<HostMemoryLock> lock_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_PINNED_HOST_TIER_H_
