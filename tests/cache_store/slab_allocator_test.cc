#include "cache_store/slab_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace kvtier {
namespace {

SlabAllocator Make(const SlabAllocatorOptions& o) {
  absl::StatusOr<SlabAllocator> a = SlabAllocator::Create(o);
  EXPECT_TRUE(a.ok()) << a.status();
  return *std::move(a);
}

TEST(SlabAllocatorTest, ClassesBoundTheWasteInsideASlotAndAtASlabsEnd) {
  const SlabAllocator a = Make({.capacity_bytes = uint64_t{1} << 30});
  EXPECT_EQ(a.slab_bytes(), 64u << 20);
  EXPECT_EQ(a.max_slot_bytes(), 16u << 20);
  EXPECT_EQ(a.num_slabs(), 16u);
  for (int c = 0; c < a.num_classes(); ++c) {
    const uint64_t size = a.class_slot_bytes(c);
    const uint32_t n = a.class_slots_per_slab(c);
    // A slab ends with less than one alignment unit (64 B or 4 KiB) per slot unused.
    const uint64_t tail = a.slab_bytes() - uint64_t{n} * size;
    EXPECT_LT(tail, uint64_t{n} * (size >= 65536 ? 4096u : 64u)) << size;
    if (size >= 65536) EXPECT_EQ(size % 4096, 0u) << size;
    if (c == 0) continue;
    // The worst block for this class is one byte over the previous class: the share of
    // the slab such blocks fill is about 15/16 where a slab holds 16 or more (above 1 KiB,
    // where 64-byte steps are fine enough), and n/(n+1) for the largest classes.
    const uint64_t prev = a.class_slot_bytes(c - 1);
    EXPECT_GT(size, prev);
    const double fill = double(n) * double(prev + 1) / double(a.slab_bytes());
    if (prev >= 1024 && n >= 16) EXPECT_GE(fill, 0.92) << prev << " -> " << size;
    if (n < 16) EXPECT_GE(fill, double(n) / (n + 1) - 0.01) << prev << " -> " << size;
  }
  // Real blocks: a Llama-3-8B bf16 block (2 MiB), a 70B one (5 MiB), DeepSeek-V3 MLA.
  for (uint64_t block : {uint64_t{2} << 20, uint64_t{5} << 20, uint64_t{1124352}}) {
    const int c = *a.ClassFor(block);
    const double fill = double(block) * a.class_slots_per_slab(c) / double(a.slab_bytes());
    EXPECT_GE(fill, 0.93) << block;
  }
  EXPECT_FALSE(a.ClassFor((16 << 20) + 1).has_value());
}

TEST(SlabAllocatorTest, SmallRangesGetSmallerSlabsAndAShortLastSlab) {
  // 1001 blocks of 4 KiB as the smallest slot: all of them fit.
  const SlabAllocator a = Make({.capacity_bytes = 1001 * 4096, .min_slot_bytes = 4096});
  EXPECT_EQ(a.class_slot_bytes(0), 4096u);
  EXPECT_GE(a.capacity_slots(0), 1000u);
  EXPECT_LE(a.capacity_bytes(), 1001u * 4096);
  const SlabAllocator b = Make({.capacity_bytes = 16 << 20});
  EXPECT_EQ(b.max_slot_bytes(), 4u << 20);  // a quarter of the range
  EXPECT_GE(b.num_slabs(), 4u);
}

TEST(SlabAllocatorTest, BadSizesAreClearErrors) {
  absl::StatusOr<SlabAllocator> a = SlabAllocator::Create({.capacity_bytes = 100});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  a = SlabAllocator::Create(
      {.capacity_bytes = 1 << 20, .slab_bytes = 1 << 20, .max_slot_bytes = 2 << 20});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("largest block"), std::string_view::npos) << a.status();
}

TEST(SlabAllocatorTest, EmptySlabsReturnToThePoolAndHeldSlabsWaitForTheirHolder) {
  SlabAllocator a = Make({.capacity_bytes = 4 << 20, .slab_bytes = 1 << 20, .max_slot_bytes = 1 << 20});
  const int small = *a.ClassFor(100 << 10);
  const int big = *a.ClassFor(1 << 20);
  std::vector<uint32_t> s;
  while (std::optional<uint32_t> slot = a.Allocate(small)) s.push_back(*slot);
  EXPECT_EQ(a.free_slabs(), 0u);
  EXPECT_FALSE(a.Allocate(big).has_value());
  // Emptying one slab gives it back; another class takes it.
  const uint32_t slab = a.SlabOf(s[0]);
  for (uint32_t slot : s) {
    if (a.SlabOf(slot) == slab) a.Free(slot);
  }
  EXPECT_EQ(a.free_slabs(), 1u);
  std::optional<uint32_t> b = a.Allocate(big);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a.SlabOf(*b), slab);
  EXPECT_EQ(a.Offset(*b), uint64_t{slab} << 20);
  // Reassign: held slabs serve only AllocateInSlab until Unhold.
  const uint32_t other = a.SlabOf(s.back());
  for (uint32_t slot : s) {
    if (a.SlabOf(slot) == other) a.Free(slot);
  }
  a.Reassign(other, big);
  EXPECT_TRUE(a.held(other));
  EXPECT_FALSE(a.Allocate(big).has_value());
  std::optional<uint32_t> c = a.AllocateInSlab(other);
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(a.AllocateInSlab(other).has_value());  // one 1 MiB slot per slab
  a.Unhold(other);
  a.Free(*c);
  EXPECT_EQ(a.free_slabs(), 1u);
}

TEST(SlabAllocatorTest, RandomMixNeverOverlapsAndAccountsEveryByte) {
  SlabAllocator a = Make({.capacity_bytes = 32 << 20, .max_slot_bytes = 2 << 20});
  std::mt19937_64 rng(7);
  const uint64_t sizes[] = {256, 4000, 70000, 524288, 1124352, 2 << 20};
  std::map<uint32_t, uint64_t> live;  // slot -> bytes
  for (int step = 0; step < 20000; ++step) {
    if (!live.empty() && (rng() % 3 == 0 || live.size() > 400)) {
      auto it = std::next(live.begin(), rng() % live.size());
      a.Free(it->first);
      live.erase(it);
      continue;
    }
    const uint64_t want = sizes[rng() % 6];
    std::optional<uint32_t> slot = a.Allocate(*a.ClassFor(want));
    if (!slot) continue;
    ASSERT_FALSE(live.count(*slot));
    ASSERT_GE(a.SlotBytes(*slot), want);
    a.SetOwner(*slot, static_cast<uint32_t>(step));
    live[*slot] = a.SlotBytes(*slot);
  }
  // No two live slots overlap, all lie in the range, and the accounts agree.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  uint64_t bytes = 0;
  for (auto [slot, size] : live) {
    ranges.emplace_back(a.Offset(slot), a.Offset(slot) + size);
    bytes += size;
    EXPECT_NE(a.Owner(slot), SlabAllocator::kNoOwner);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) ASSERT_LE(ranges[i - 1].second, ranges[i].first);
  ASSERT_LE(ranges.back().second, a.capacity_bytes());
  EXPECT_EQ(a.allocated_bytes(), bytes);
  EXPECT_EQ(a.allocated_slots(), live.size());
  for (auto [slot, size] : live) a.Free(slot);
  EXPECT_EQ(a.free_slabs(), a.num_slabs());
}

TEST(SlabAllocatorTest, RecoveredSlabsKeepTheirSlotsAndFreeTheRest) {
  SlabAllocator a = Make({.capacity_bytes = 4 << 20, .slab_bytes = 1 << 20, .max_slot_bytes = 1 << 20});
  const int cls = *a.ClassFor(200 << 10);
  const std::vector<uint32_t> used = {0, 3};
  a.AssignRecovered(2, cls, used);
  EXPECT_EQ(a.allocated_in_slab(2), 2u);
  std::set<uint32_t> got;
  for (int i = 0; i < 3; ++i) got.insert(a.IndexOf(*a.Allocate(cls)));
  EXPECT_EQ(got, (std::set<uint32_t>{1, 2, 4}));
  a.AssignRecovered(1, cls, {});  // nothing found: the slab stays free
  EXPECT_EQ(a.ClassOfSlab(1), -1);
}

}  // namespace
}  // namespace kvtier
