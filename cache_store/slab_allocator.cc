#include "cache_store/slab_allocator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"

namespace kvtier {
namespace {

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
uint64_t RoundDown(uint64_t v, uint64_t a) { return v / a * a; }

}  // namespace

absl::StatusOr<SlabAllocator> SlabAllocator::Create(const SlabAllocatorOptions& o) {
  if (o.fine_align == 0 || o.coarse_align == 0 || o.coarse_align % o.fine_align != 0) {
    return absl::InvalidArgumentError("slab alignments must be > 0, the coarse a multiple of the fine");
  }
  uint64_t max_slot_bytes = o.max_slot_bytes;
  if (max_slot_bytes == 0) {
    // A quarter of the range, so that it holds several slabs; at least the smallest slot.
    max_slot_bytes = std::max(RoundUp(std::max<uint64_t>(o.min_slot_bytes, 1), o.fine_align),
                              std::min<uint64_t>(16 << 20, RoundDown(o.capacity_bytes / 4, o.coarse_align)));
  }
  uint64_t slab_bytes = o.slab_bytes;
  if (slab_bytes == 0) {
    slab_bytes = std::max(RoundUp(max_slot_bytes, o.coarse_align),
                          std::min<uint64_t>(uint64_t{64} << 20, o.capacity_bytes / 16));
  }
  const uint64_t slab = RoundDown(std::min(slab_bytes, o.capacity_bytes), o.coarse_align);
  if (slab == 0 || max_slot_bytes == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a capacity of ", o.capacity_bytes, " bytes with slabs of ", slab_bytes,
        " bytes makes no slab (each a multiple of ", o.coarse_align, " bytes)"));
  }
  const uint64_t align_of_max = max_slot_bytes >= o.coarse_from ? o.coarse_align : o.fine_align;
  const uint64_t max_slot = RoundUp(max_slot_bytes, align_of_max);
  if (max_slot > slab) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the largest block (", max_slot_bytes, " bytes) must fit a slab of ", slab,
        " bytes (raise the slab size, or the capacity: a slab is at most the capacity)"));
  }
  SlabAllocator a;
  a.slab_bytes_ = slab;
  a.max_request_ = max_slot_bytes;
  // Geometric sizes, then each stretched to the largest that fits as many per slab.
  std::vector<uint64_t> sizes;
  auto align_of = [&](uint64_t size) { return size >= o.coarse_from ? o.coarse_align : o.fine_align; };
  uint64_t s = std::min(std::max<uint64_t>(o.min_slot_bytes, o.fine_align), max_slot);
  s = RoundUp(s, align_of(s));
  const uint64_t min_slot = s;
  // Geometric up to where a slab holds 64 slots; above, one class per slot count
  // (slab / n, n = 64 .. 1), whose steps are (n + 1) / n.
  constexpr uint64_t kPerSlotCounts = 64;
  const uint64_t geometric_end = std::min(max_slot, slab / kPerSlotCounts);
  while (s < geometric_end) {
    sizes.push_back(s);
    // The next size at most 1/16 up (or one alignment unit), aligned for its own range.
    uint64_t next = s + std::max(RoundDown(s / 16, align_of(s)), align_of(s));
    next = RoundDown(next, align_of(next));
    if (next <= s) next = RoundUp(s + 1, align_of(s + 1));
    s = next;
  }
  for (uint64_t n = kPerSlotCounts; n >= 1; --n) {
    const uint64_t size = RoundDown(slab / n, align_of(slab / n));
    if (size >= min_slot && size < max_slot && (sizes.empty() || size > sizes.back())) {
      sizes.push_back(size);
    }
  }
  if (sizes.empty() || sizes.back() < max_slot) sizes.push_back(max_slot);
  for (uint64_t size : sizes) {
    const uint64_t n = slab / size;
    uint64_t stretched = RoundDown(slab / n, o.fine_align);
    if (stretched >= o.coarse_from) stretched = RoundDown(stretched, o.coarse_align);
    stretched = std::max(size, stretched);
    if (!a.class_bytes_.empty() && a.class_slots_.back() == n) {
      a.class_bytes_.back() = std::max(a.class_bytes_.back(), stretched);
      continue;
    }
    a.class_bytes_.push_back(stretched);
    a.class_slots_.push_back(static_cast<uint32_t>(n));
  }
  // The last slab may be shorter: it holds fewer slots of each class (or none of the
  // largest), and no capacity is lost to rounding.
  const uint64_t tail = RoundDown(o.capacity_bytes % slab, o.coarse_align);
  const uint64_t slabs = o.capacity_bytes / slab + (tail >= a.class_bytes_.front() ? 1 : 0);
  const uint64_t stride = a.class_slots_.front();  // the most slots a slab holds
  if (slabs * stride >= UINT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a capacity of ", o.capacity_bytes, " bytes in slots of at least ", o.min_slot_bytes,
        " bytes needs more than 2^32 slot ids; raise the smallest slot size"));
  }
  a.stride_ = static_cast<uint32_t>(stride);
  a.slabs_.resize(slabs);
  a.capacity_bytes_ = o.capacity_bytes / slab * slab;
  if (slabs * slab > o.capacity_bytes) {
    a.last_slab_bytes_ = tail;
    a.capacity_bytes_ += tail;
  } else {
    a.last_slab_bytes_ = slab;
  }
  a.free_slabs_.reserve(slabs);
  for (uint64_t i = slabs; i > 0; --i) a.free_slabs_.push_back(static_cast<uint32_t>(i - 1));
  a.class_slab_count_.assign(a.class_bytes_.size(), 0);
  a.with_free_.resize(a.class_bytes_.size());
  return a;
}

std::optional<int> SlabAllocator::ClassFor(uint64_t bytes) const {
  if (bytes > max_request_) return std::nullopt;
  auto it = std::lower_bound(class_bytes_.begin(), class_bytes_.end(), std::max<uint64_t>(bytes, 1));
  if (it == class_bytes_.end()) return std::nullopt;
  return static_cast<int>(it - class_bytes_.begin());
}

uint32_t SlabAllocator::SlotsIn(uint32_t slab, int cls) const {
  if (slab + 1 < slabs_.size()) return class_slots_[cls];
  return static_cast<uint32_t>(std::min<uint64_t>(class_slots_[cls], last_slab_bytes_ / class_bytes_[cls]));
}

void SlabAllocator::Assign(uint32_t slab, int cls, bool held) {
  if (on_assign_) on_assign_(slab, cls);
  Slab& s = slabs_[slab];
  s.cls = cls;
  s.held = held;
  ++s.epoch;
  s.listed = false;
  s.allocated = 0;
  s.fresh = 0;
  s.free.clear();
  ++class_slab_count_[cls];
}

void SlabAllocator::Release(uint32_t slab) {
  Slab& s = slabs_[slab];
  KVTIER_CHECK(s.allocated == 0 && s.cls >= 0) << "releasing slab " << slab;
  --class_slab_count_[s.cls];
  s.cls = -1;
  s.held = false;
  ++s.epoch;
  s.listed = false;
  s.free.clear();
  s.free.shrink_to_fit();
  s.fresh = 0;
  free_slabs_.push_back(slab);
}

void SlabAllocator::List(uint32_t slab) {
  Slab& s = slabs_[slab];
  if (s.listed || s.held || s.cls < 0) return;
  s.listed = true;
  with_free_[s.cls].emplace_back(slab, s.epoch);
}

std::optional<uint32_t> SlabAllocator::AllocateInSlab(uint32_t slab) {
  Slab& s = slabs_[slab];
  KVTIER_CHECK(s.cls >= 0) << "allocating in free slab " << slab;
  uint32_t index;
  if (!s.free.empty()) {
    index = s.free.back();
    s.free.pop_back();
  } else if (s.fresh < SlotsIn(slab, s.cls)) {
    index = s.fresh++;
  } else {
    return std::nullopt;
  }
  ++s.allocated;
  ++allocated_slots_;
  allocated_bytes_ += class_bytes_[s.cls];
  return slab * stride_ + index;
}

std::optional<uint32_t> SlabAllocator::Allocate(int cls) {
  auto& list = with_free_[cls];
  while (!list.empty()) {
    auto [slab, epoch] = list.back();
    Slab& s = slabs_[slab];
    if (s.epoch != epoch || s.held || s.cls != cls) {
      list.pop_back();  // stale: the slab changed class since it was listed
      continue;
    }
    if (std::optional<uint32_t> slot = AllocateInSlab(slab)) {
      if (s.free.empty() && s.fresh == SlotsIn(slab, cls)) {
        list.pop_back();
        s.listed = false;
      }
      return slot;
    }
    list.pop_back();
    s.listed = false;
  }
  // A free slab (the short last one only when the class fits it).
  auto it = std::find_if(free_slabs_.rbegin(), free_slabs_.rend(),
                         [&](uint32_t slab) { return SlotsIn(slab, cls) > 0; });
  if (it == free_slabs_.rend()) return std::nullopt;
  const uint32_t slab = *it;
  free_slabs_.erase(std::next(it).base());
  Assign(slab, cls, /*held=*/false);
  std::optional<uint32_t> slot = AllocateInSlab(slab);
  List(slab);
  return slot;
}

void SlabAllocator::Free(uint32_t slot) {
  const uint32_t slab = SlabOf(slot);
  KVTIER_CHECK(slab < slabs_.size()) << "slot " << slot << " is outside the range";
  Slab& s = slabs_[slab];
  KVTIER_CHECK(s.cls >= 0 && s.allocated > 0 && IndexOf(slot) < s.fresh)
      << "free of slot " << slot << " that is not allocated";
  owners_.erase(slot);
  s.free.push_back(IndexOf(slot));
  --s.allocated;
  --allocated_slots_;
  allocated_bytes_ -= class_bytes_[s.cls];
  if (s.held) return;
  if (s.allocated == 0) {
    Release(slab);
  } else {
    List(slab);
  }
}

void SlabAllocator::AssignRecovered(uint32_t slab, int cls, std::span<const uint32_t> used) {
  auto it = std::find(free_slabs_.begin(), free_slabs_.end(), slab);
  KVTIER_CHECK(it != free_slabs_.end() && slabs_[slab].cls < 0) << "slab " << slab << " is taken";
  free_slabs_.erase(it);
  Assign(slab, cls, /*held=*/false);
  Slab& s = slabs_[slab];
  s.fresh = SlotsIn(slab, cls);
  std::vector<bool> is_used(s.fresh, false);
  for (uint32_t i : used) {
    KVTIER_CHECK(i < s.fresh && !is_used[i]) << "recovered slot " << i << " of slab " << slab;
    is_used[i] = true;
  }
  for (uint32_t i = s.fresh; i > 0; --i) {
    if (!is_used[i - 1]) s.free.push_back(i - 1);
  }
  s.allocated = static_cast<uint32_t>(used.size());
  allocated_slots_ += used.size();
  allocated_bytes_ += used.size() * class_bytes_[cls];
  if (s.allocated == 0) {
    Release(slab);
  } else {
    List(slab);
  }
}

void SlabAllocator::Reassign(uint32_t slab, int cls) {
  Slab& s = slabs_[slab];
  KVTIER_CHECK(s.allocated == 0) << "reassigning slab " << slab << " with allocated slots";
  if (s.cls >= 0) {
    --class_slab_count_[s.cls];
  } else {
    auto it = std::find(free_slabs_.begin(), free_slabs_.end(), slab);
    if (it != free_slabs_.end()) free_slabs_.erase(it);
  }
  Assign(slab, cls, /*held=*/true);
}

void SlabAllocator::Unhold(uint32_t slab) {
  Slab& s = slabs_[slab];
  if (!s.held) return;
  s.held = false;
  if (s.allocated == 0) {
    Release(slab);
  } else {
    List(slab);
  }
}

void SlabAllocator::SetOwner(uint32_t slot, uint32_t owner) {
  if (owner == kNoOwner) {
    owners_.erase(slot);
  } else {
    owners_[slot] = owner;
  }
}

uint32_t SlabAllocator::Owner(uint32_t slot) const {
  auto it = owners_.find(slot);
  return it == owners_.end() ? kNoOwner : it->second;
}

std::vector<std::pair<uint32_t, uint32_t>> SlabAllocator::AllocatedInSlab(uint32_t slab) const {
  const Slab& s = slabs_[slab];
  std::vector<std::pair<uint32_t, uint32_t>> out;
  if (s.cls < 0 || s.allocated == 0) return out;
  std::vector<bool> is_free(s.fresh, false);
  for (uint32_t i : s.free) is_free[i] = true;
  out.reserve(s.allocated);
  for (uint32_t i = 0; i < s.fresh; ++i) {
    if (is_free[i]) continue;
    const uint32_t slot = slab * stride_ + i;
    out.emplace_back(slot, Owner(slot));
  }
  return out;
}

std::vector<uint32_t> SlabAllocator::SlabsOfClass(int cls) const {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < slabs_.size(); ++i) {
    if (slabs_[i].cls == cls) out.push_back(i);
  }
  return out;
}

std::string SlabAllocator::DebugString() const {
  std::string out = absl::StrCat(num_slabs(), " slabs of ", slab_bytes_, " bytes (", free_slabs(),
                                 " free); classes in use:");
  for (int c = 0; c < num_classes(); ++c) {
    if (class_slab_count_[c] == 0) continue;
    absl::StrAppend(&out, " ", class_bytes_[c], "x", class_slots_[c], ":", class_slab_count_[c]);
  }
  return out;
}

}  // namespace kvtier
