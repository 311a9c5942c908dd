#include "cache_store/pinned_host_tier.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

namespace kvtier {
namespace {

TEST(PinnedHostTierTest, SlotsAreAlignedDistinctAndBounded) {
  auto tier = PinnedHostTier::Create(
      {.capacity_bytes = 10 * 8192 + 100, .slot_bytes = 5000, .lock_mode = MemoryLockMode::kNone});
  ASSERT_TRUE(tier.ok()) << tier.status();
  EXPECT_EQ((*tier)->slot_bytes(), 8192u);  // rounded up to 4 KiB
  EXPECT_EQ((*tier)->capacity_slots(), 10u);
  std::set<uint32_t> slots;
  for (int i = 0; i < 10; ++i) {
    std::optional<uint32_t> s = (*tier)->Allocate();
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*tier)->SlotData(*s)) % 4096, 0u);
    std::memset((*tier)->SlotData(*s), i, (*tier)->slot_bytes());  // every byte is usable
    slots.insert(*s);
  }
  EXPECT_EQ(slots.size(), 10u);
  EXPECT_FALSE((*tier)->Allocate().has_value());  // never grows
  (*tier)->Free(3);
  EXPECT_EQ((*tier)->free_slots(), 1u);
  EXPECT_EQ((*tier)->Allocate(), 3u);
}

TEST(PinnedHostTierTest, BestEffortLockingReportsWhatItGot) {
  auto tier = PinnedHostTier::Create(
      {.capacity_bytes = 1 << 20, .slot_bytes = 1 << 16, .lock_mode = MemoryLockMode::kBestEffort});
  ASSERT_TRUE(tier.ok()) << tier.status();
  if ((*tier)->locked()) {
    EXPECT_NE(std::string((*tier)->lock_method()), "none");
  } else {
    EXPECT_EQ(std::string((*tier)->lock_method()), "none");
  }
}

TEST(PinnedHostTierTest, RejectsCapacityBelowOneSlot) {
  auto tier = PinnedHostTier::Create(
      {.capacity_bytes = 4096, .slot_bytes = 8192, .lock_mode = MemoryLockMode::kNone});
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kInvalidArgument);
  tier = PinnedHostTier::Create(
      {.capacity_bytes = 4096, .slot_bytes = 0, .lock_mode = MemoryLockMode::kNone});
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PinnedHostTierDeathTest, DoubleFreeAborts) {
  auto tier = PinnedHostTier::Create(
      {.capacity_bytes = 8192, .slot_bytes = 4096, .lock_mode = MemoryLockMode::kNone});
  ASSERT_TRUE(tier.ok());
  uint32_t s = *(*tier)->Allocate();
  (*tier)->Free(s);
  EXPECT_DEATH((*tier)->Free(s), "double free");
}

}  // namespace
}  // namespace kvtier
