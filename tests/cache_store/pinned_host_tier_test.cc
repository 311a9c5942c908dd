#include "cache_store/pinned_host_tier.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

namespace kvtier {
namespace {

TEST(PinnedHostTierTest, SlotsOfEverySizeAreUsableDistinctAndBounded) {
  auto tier = PinnedHostTier::Create({.capacity_bytes = 8 << 20,
                                      .max_block_bytes = 1 << 20,
                                      .lock_mode = MemoryLockMode::kNone});
  ASSERT_TRUE(tier.ok()) << tier.status();
  SlabAllocator& slots = (*tier)->slots();
  EXPECT_EQ((*tier)->max_block_bytes(), 1u << 20);
  EXPECT_EQ((*tier)->capacity_bytes(), 8u << 20);
  // Blocks of three sizes; every byte of each slot is written, none overlaps another.
  std::vector<std::pair<uint32_t, uint64_t>> taken;
  for (uint64_t size : {uint64_t{300}, uint64_t{70000}, uint64_t{1} << 20}) {
    const int cls = *slots.ClassFor(size);
    for (int i = 0; i < 3; ++i) {
      std::optional<uint32_t> s = slots.Allocate(cls);
      ASSERT_TRUE(s.has_value());
      if (slots.SlotBytes(*s) >= 65536) {
        EXPECT_EQ(reinterpret_cast<uintptr_t>((*tier)->SlotData(*s)) % 4096, 0u);
      }
      std::memset((*tier)->SlotData(*s), static_cast<int>(taken.size()), slots.SlotBytes(*s));
      taken.emplace_back(*s, slots.SlotBytes(*s));
    }
  }
  for (size_t i = 0; i < taken.size(); ++i) {
    const uint8_t* p = (*tier)->SlotData(taken[i].first);
    for (uint64_t b = 0; b < taken[i].second; b += 997) ASSERT_EQ(p[b], i) << "slot " << i;
  }
  // Never grows: 1 MiB slots run out once the other classes' slabs are counted.
  const int big = *slots.ClassFor(1 << 20);
  int more = 0;
  while (slots.Allocate(big)) ++more;
  EXPECT_EQ(more, 3);  // 8 slabs of 1 MiB: 2 hold the small blocks, 3 the first big ones
  EXPECT_FALSE(slots.ClassFor((1 << 20) + 1).has_value());
}

TEST(PinnedHostTierTest, BestEffortLockingReportsWhatItGot) {
  auto tier = PinnedHostTier::Create(
      {.capacity_bytes = 1 << 20, .lock_mode = MemoryLockMode::kBestEffort});
  ASSERT_TRUE(tier.ok()) << tier.status();
  if ((*tier)->locked()) {
    EXPECT_NE(std::string((*tier)->lock_method()), "none");
  } else {
    EXPECT_EQ(std::string((*tier)->lock_method()), "none");
  }
}

TEST(PinnedHostTierTest, RejectsSizesThatMakeNoSlabWithTheReason) {
  auto tier = PinnedHostTier::Create({.capacity_bytes = 1000, .lock_mode = MemoryLockMode::kNone});
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tier.status().message().find("T1"), std::string_view::npos) << tier.status();
  tier = PinnedHostTier::Create({.capacity_bytes = 1 << 20,
                                 .max_block_bytes = 2 << 20,
                                 .lock_mode = MemoryLockMode::kNone});
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tier.status().message().find("largest block"), std::string_view::npos)
      << tier.status();
}

}  // namespace
}  // namespace kvtier
