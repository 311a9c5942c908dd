// SlruPolicy: blocks without shown reuse are evicted before blocks that came back, the
// protected segment keeps to its share (its oldest moves to probation, not out), partitions
// and the evictable set behave as in LruPolicy.
#include "cache_store/slru_policy.h"

#include <gtest/gtest.h>

namespace kvtier {
namespace {

void Insert(SlruPolicy& p, uint32_t h, bool reused, uint32_t partition = 0) {
  p.OnResident(h, {.partition = partition, .reused = reused});
  p.SetEvictable(h, true);
}

TEST(SlruPolicyTest, BlocksWithoutReuseGoFirstEvenWhenNewer) {
  SlruPolicy p(16, /*probation_share=*/0.1);
  Insert(p, 0, /*reused=*/true);
  Insert(p, 1, /*reused=*/true);
  Insert(p, 2, /*reused=*/false);
  Insert(p, 3, /*reused=*/false);
  EXPECT_TRUE(p.IsProtected(0));
  EXPECT_FALSE(p.IsProtected(2));
  EXPECT_EQ(p.Victim(), 2u);  // the oldest block of probation, not the oldest overall
  EXPECT_TRUE(p.EvictsBefore(3, 0));
  EXPECT_FALSE(p.EvictsBefore(0, 3));
  EXPECT_TRUE(p.EvictsBefore(2, 3));
  p.OnLeave(2, /*evicted=*/true);
  p.OnLeave(3, /*evicted=*/true);
  EXPECT_EQ(p.Victim(), 0u);  // probation empty: protected, least recent first
  EXPECT_EQ(p.evictable_size(), 2u);
  EXPECT_GT(p.ReuseScore(0), p.ReuseScore(3));
}

TEST(SlruPolicyTest, ProtectedKeepsToItsShareAndItsOldestGetsASecondChance) {
  SlruPolicy p(16, /*probation_share=*/0.5);  // protected: at most half the resident blocks
  for (uint32_t h = 8; h < 11; ++h) Insert(p, h, /*reused=*/false);
  for (uint32_t h = 0; h < 5; ++h) Insert(p, h, /*reused=*/true);  // 8 resident: 4 protected
  EXPECT_EQ(p.protected_size(), 4u);
  EXPECT_FALSE(p.IsProtected(0));  // moved to probation's front
  EXPECT_EQ(p.Victim(), 8u);       // older than 0 in probation
  p.OnLeave(8, /*evicted=*/true);
  p.OnLeave(9, /*evicted=*/true);
  p.OnLeave(10, /*evicted=*/true);
  EXPECT_EQ(p.Victim(), 0u);
  // An access protects it again; with 5 resident, 3 may stay protected.
  p.OnAccess(0, {});
  EXPECT_TRUE(p.IsProtected(0));
  EXPECT_EQ(p.protected_size(), 3u);
  EXPECT_EQ(p.Victim(), 1u);  // 1 and 2 went to probation, 1 first
}

TEST(SlruPolicyTest, PartitionsAndTheEvictableSet) {
  SlruPolicy p(16);
  Insert(p, 0, /*reused=*/false, /*partition=*/0);
  Insert(p, 1, /*reused=*/true, /*partition=*/1);
  Insert(p, 2, /*reused=*/false, /*partition=*/1);
  EXPECT_EQ(p.VictimOf(0), 0u);
  EXPECT_EQ(p.VictimOf(1), 2u);
  EXPECT_FALSE(p.VictimOf(7).has_value());
  p.SetEvictable(2, false);  // leased or read: not a victim
  EXPECT_EQ(p.VictimOf(1), 1u);
  EXPECT_TRUE(p.IsResident(2));
  EXPECT_FALSE(p.IsEvictable(2));
  p.SetEvictable(2, true);
  EXPECT_EQ(p.VictimOf(1), 2u);
  p.OnLeave(0, false);
  p.OnLeave(1, false);
  p.OnLeave(2, false);
  EXPECT_FALSE(p.Victim().has_value());
  EXPECT_EQ(p.evictable_size(), 0u);
}

TEST(SlruPolicyTest, ItIsTheNamedT2Policy) {
  auto slru = MakeEvictionPolicy("slru", 8, 8);
  ASSERT_TRUE(slru.ok()) << slru.status();
  EXPECT_EQ((*slru)->name(), "slru");
  EXPECT_FALSE((*slru)->leaves_only());
}

}  // namespace
}  // namespace kvtier
