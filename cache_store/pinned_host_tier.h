// PinnedHostTier (T1): one preallocated arena of fixed-size slots in host memory.
//
// The arena is mapped, pre-faulted and (by default) locked once at creation and never
// grows: capacity_bytes / slot_bytes slots, each holding at most one block payload.
// Slots are 4 KiB aligned (slot_bytes is rounded up to a multiple of 4 KiB) so they can be
// the source or target of direct I/O and DMA.
//
// Thread-compatible: Allocate/Free must be serialised by the owner (BlockStore holds its
// mutex); reading and writing a slot's bytes needs no lock while the owner holds the slot.
#ifndef KVTIER_CACHE_STORE_PINNED_HOST_TIER_H_
#define KVTIER_CACHE_STORE_PINNED_HOST_TIER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "cache_store/host_memory_lock.h"

namespace kvtier {

enum class MemoryLockMode {
  kRequired,    // fail creation unless the arena can be pinned/locked
  kBestEffort,  // lock if possible, otherwise run unlocked (reported by locked())
  kNone,        // never lock (tests, small dev runs)
};

struct PinnedHostTierOptions {
  uint64_t capacity_bytes = uint64_t{1} << 30;
  uint64_t slot_bytes = uint64_t{2} << 20;
  MemoryLockMode lock_mode = MemoryLockMode::kBestEffort;
};

class PinnedHostTier {
 public:
  static constexpr uint64_t kSlotAlignment = 4096;

  // INVALID_ARGUMENT when the capacity holds no slot; RESOURCE_EXHAUSTED when the memory
  // cannot be mapped, or cannot be locked under kRequired.
  static absl::StatusOr<std::unique_ptr<PinnedHostTier>> Create(
      const PinnedHostTierOptions& options);

  ~PinnedHostTier();
  PinnedHostTier(const PinnedHostTier&) = delete;
  PinnedHostTier& operator=(const PinnedHostTier&) = delete;

  // A free slot, or nullopt when all are taken.
  std::optional<uint32_t> Allocate();
  // REQUIRES: slot was returned by Allocate() and not freed since.
  void Free(uint32_t slot);

  uint8_t* SlotData(uint32_t slot) const { return base_ + uint64_t{slot} * slot_bytes_; }

  uint64_t slot_bytes() const { return slot_bytes_; }
  uint32_t capacity_slots() const { return capacity_slots_; }
  uint64_t capacity_bytes() const { return uint64_t{capacity_slots_} * slot_bytes_; }
  uint32_t free_slots() const { return static_cast<uint32_t>(free_list_.size()); }
  bool locked() const { return lock_ != nullptr; }
  // "cuda_host_register", "mlock" or "none".
  const char* lock_method() const { return lock_ ? lock_->MethodName() : "none"; }

 private:
  PinnedHostTier(uint8_t* base, size_t mapped_bytes, uint64_t slot_bytes, uint32_t slots);

  uint8_t* base_;
  size_t mapped_bytes_;
  uint64_t slot_bytes_;
  uint32_t capacity_slots_;
  std::vector<uint32_t> free_list_;
  std::vector<bool> allocated_;  // guards against double free
  std::unique_ptr<HostMemoryLock> lock_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_PINNED_HOST_TIER_H_
