// SlabAllocator: slots of many sizes carved from one fixed range, in size classes of slabs.
//
// The range (a tier's capacity) is cut into equal slabs of slab_bytes. A slab is free or
// belongs to one size class, whose slots it holds side by side; a block takes one slot of
// the smallest class at least its size. So blocks of every layout up to max_slot_bytes
// share one preallocated range that never grows, and the waste is bounded:
//  - inside a slot: class sizes grow by at most 1/16 (6.25%) from one to the next;
//  - at a slab's end: each class's slot size is stretched to slab_bytes / n (n slots per
//    slab), so a slab ends with less than one alignment unit unused. Classes whose slots
//    are a large part of a slab (n < 16) are spaced by slab_bytes / n instead, whose step
//    is 1/n: a block just over slab_bytes / (n + 1) leaves up to 1/(n + 1) of its slab
//    unused. With slab_bytes = 4 x max_slot_bytes that is at most 20%, and only for blocks
//    above slab_bytes / 16.
// Class sizes are multiples of fine_align (64 bytes) below coarse_from (64 KiB) and of
// coarse_align (4 KiB: direct I/O, DMA) from it up, so slots of those classes start 4 KiB
// aligned; below 1 KiB the 64-byte steps are more than 1/16 apart.
//
// A slab whose last slot is freed goes back to the free slabs, so classes trade memory as
// the mix of layouts changes. The owner of the allocator can also take a slab from one class
// for another (Reassign) once it has emptied it; such a slab is held: its slots are handed
// out only by AllocateInSlab until Unhold, so that whoever emptied it can finish reading
// the old contents first.
//
// Slots are named by 32-bit ids: slab * slots_per_slab_max + index. Each allocated slot
// carries an owner tag (kNoOwner unless set) for the caller's reverse map.
//
// Thread-compatible: the owner serialises every call (BlockStore holds its mutex).
#ifndef KVTIER_CACHE_STORE_SLAB_ALLOCATOR_H_
#define KVTIER_CACHE_STORE_SLAB_ALLOCATOR_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace kvtier {

struct SlabAllocatorOptions {
  uint64_t capacity_bytes = 0;
  // 0: max(max_slot_bytes, min(64 MiB, capacity / 16)), so that a range holds at least 4
  // slabs (and up to 16 and more) of every class. Rounded down to coarse_align.
  uint64_t slab_bytes = 0;
  // The largest slot; at most slab_bytes. 0: min(16 MiB, capacity / 4), at least the
  // smallest slot.
  uint64_t max_slot_bytes = 0;
  uint64_t min_slot_bytes = 256;
  uint64_t fine_align = 64;
  uint64_t coarse_align = 4096;
  uint64_t coarse_from = uint64_t{64} << 10;
};

class SlabAllocator {
 public:
  static constexpr uint32_t kNoOwner = UINT32_MAX;

  // INVALID_ARGUMENT naming the option when the sizes do not make at least one slab, or
  // the slots would not fit 32-bit ids.
  static absl::StatusOr<SlabAllocator> Create(const SlabAllocatorOptions& options);

  // The smallest class whose slots hold `bytes`; nullopt when bytes > max_slot_bytes().
  std::optional<int> ClassFor(uint64_t bytes) const;
  int num_classes() const { return static_cast<int>(class_bytes_.size()); }
  uint64_t class_slot_bytes(int cls) const { return class_bytes_[cls]; }
  uint32_t class_slots_per_slab(int cls) const { return class_slots_[cls]; }

  // A slot of class `cls`: from one of its slabs with a free slot, else from a free slab.
  // nullopt when neither exists (the caller evicts or reassigns a slab).
  std::optional<uint32_t> Allocate(int cls);
  // A free slot of this (held) slab. REQUIRES: the slab belongs to a class.
  std::optional<uint32_t> AllocateInSlab(uint32_t slab);
  // REQUIRES: slot allocated. Clears its owner.
  void Free(uint32_t slot);
  // Recovery: gives a free slab to `cls` with the slots at these indices allocated (a slab
  // with none stays free). REQUIRES: the slab is free; the indices are distinct slots.
  void AssignRecovered(uint32_t slab, int cls, std::span<const uint32_t> used_indices);
  // Called whenever a slab joins a class (before any slot of it is handed out): the T2
  // tier records the slab's class on disk.
  void set_on_assign(std::function<void(uint32_t slab, int cls)> f) { on_assign_ = std::move(f); }
  // Slots of class `cls` in this slab (the last slab may be shorter).
  uint32_t SlotsIn(uint32_t slab, int cls) const;

  // REQUIRES: no allocated slot in the slab. It joins `cls`, held (see above).
  void Reassign(uint32_t slab, int cls);
  // Its free slots become available to Allocate; an empty slab goes back to the free slabs.
  void Unhold(uint32_t slab);

  void SetOwner(uint32_t slot, uint32_t owner);
  uint32_t Owner(uint32_t slot) const;

  uint64_t Offset(uint32_t slot) const {
    const uint32_t slab = SlabOf(slot);
    return uint64_t{slab} * slab_bytes_ + uint64_t{IndexOf(slot)} * class_bytes_[slabs_[slab].cls];
  }
  uint64_t SlotBytes(uint32_t slot) const { return class_bytes_[slabs_[SlabOf(slot)].cls]; }
  int ClassOfSlot(uint32_t slot) const { return slabs_[SlabOf(slot)].cls; }
  uint32_t SlotId(uint32_t slab, uint32_t index) const { return slab * stride_ + index; }
  uint32_t SlabOf(uint32_t slot) const { return slot / stride_; }
  uint32_t IndexOf(uint32_t slot) const { return slot % stride_; }
  // -1 for a free slab.
  int ClassOfSlab(uint32_t slab) const { return slabs_[slab].cls; }
  bool held(uint32_t slab) const { return slabs_[slab].held; }
  uint32_t allocated_in_slab(uint32_t slab) const { return slabs_[slab].allocated; }
  // The allocated slots of a slab with their owners, in index order.
  std::vector<std::pair<uint32_t, uint32_t>> AllocatedInSlab(uint32_t slab) const;
  // The slabs of a class (held ones included), unordered.
  std::vector<uint32_t> SlabsOfClass(int cls) const;

  uint32_t num_slabs() const { return static_cast<uint32_t>(slabs_.size()); }
  uint32_t free_slabs() const { return static_cast<uint32_t>(free_slabs_.size()); }
  uint64_t slab_bytes() const { return slab_bytes_; }
  // The bytes the slabs cover (the capacity rounded down to the alignment).
  uint64_t capacity_bytes() const { return capacity_bytes_; }
  uint64_t slab_size(uint32_t slab) const {
    return slab + 1 < slabs_.size() ? slab_bytes_ : last_slab_bytes_;
  }
  // The largest block accepted (the option, or its default).
  uint64_t max_slot_bytes() const { return max_request_; }
  // Bytes of the allocated slots, and their count.
  uint64_t allocated_bytes() const { return allocated_bytes_; }
  uint64_t allocated_slots() const { return allocated_slots_; }
  // How many slots of this class the whole range would hold.
  uint64_t capacity_slots(int cls) const {
    return uint64_t{num_slabs() - 1} * class_slots_[cls] + SlotsIn(num_slabs() - 1, cls);
  }
  // Slabs owned by each class.
  uint32_t class_slabs(int cls) const { return class_slab_count_[cls]; }
  std::string DebugString() const;

 private:
  struct Slab {
    int cls = -1;
    bool held = false;
    uint32_t epoch = 0;  // bumped on every change of class; stale list entries skip
    bool listed = false;
    uint32_t allocated = 0;
    uint32_t fresh = 0;          // indices [fresh, slots) were never handed out
    std::vector<uint32_t> free;  // indices handed out and freed since (a stack)
  };

  SlabAllocator() = default;
  void Assign(uint32_t slab, int cls, bool held);
  void Release(uint32_t slab);  // back to the free slabs; REQUIRES: empty
  void List(uint32_t slab);

  uint64_t slab_bytes_ = 0;
  uint64_t max_request_ = 0;
  uint64_t capacity_bytes_ = 0;
  uint64_t last_slab_bytes_ = 0;
  std::function<void(uint32_t, int)> on_assign_;
  uint32_t stride_ = 0;  // ids per slab
  std::vector<uint64_t> class_bytes_;
  std::vector<uint32_t> class_slots_;
  std::vector<uint32_t> class_slab_count_;
  std::vector<Slab> slabs_;
  std::vector<uint32_t> free_slabs_;  // a stack; low slabs first
  // Per class: slabs that had a free slot when listed, with the epoch they were listed in.
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> with_free_;
  // Memory in proportion to the allocated slots, not to the range.
  absl::flat_hash_map<uint32_t, uint32_t> owners_;
  uint64_t allocated_bytes_ = 0;
  uint64_t allocated_slots_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_SLAB_ALLOCATOR_H_
