#include "cache_store/lru_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace kvtier {
namespace {

// The old three-call vocabulary, in terms of the tier interface.
void Insert(LruPolicy& lru, uint32_t h) {
  lru.OnResident(h, {});
  lru.SetEvictable(h, true);
}
void Touch(LruPolicy& lru, uint32_t h) { lru.OnAccess(h, {}); }
void Erase(LruPolicy& lru, uint32_t h) { lru.OnLeave(h, /*evicted=*/false); }

TEST(LruPolicyTest, EvictsLeastRecentlyUsed) {
  LruPolicy lru(8);
  for (uint32_t h : {0u, 1u, 2u, 3u}) Insert(lru, h);
  EXPECT_EQ(lru.Victim(), 0u);
  Touch(lru, 0);
  EXPECT_EQ(lru.Victim(), 1u);
  Erase(lru, 1);
  EXPECT_EQ(lru.Victim(), 2u);
  EXPECT_EQ(lru.evictable_size(), 3u);
  EXPECT_FALSE(lru.IsResident(1));
  Erase(lru, 1);  // erasing an absent handle is a no-op
  Erase(lru, 2);
  Erase(lru, 3);
  EXPECT_EQ(lru.Victim(), 0u);
  Erase(lru, 0);
  EXPECT_FALSE(lru.Victim().has_value());
  EXPECT_EQ(lru.evictable_size(), 0u);
}

TEST(LruPolicyTest, ABlockThatBecomesEvictableCountsAsJustUsed) {
  LruPolicy lru(4);
  for (uint32_t h : {0u, 1u, 2u}) Insert(lru, h);
  lru.SetEvictable(0, false);  // leased
  EXPECT_EQ(lru.Victim(), 1u);
  EXPECT_FALSE(lru.IsEvictable(0));
  EXPECT_TRUE(lru.IsResident(0));
  lru.SetEvictable(0, true);  // released: most recent now
  EXPECT_EQ(lru.Victim(), 1u);
  Erase(lru, 1);
  Erase(lru, 2);
  EXPECT_EQ(lru.Victim(), 0u);
}

TEST(LruPolicyTest, MatchesAReferenceModelOnARandomSequence) {
  constexpr uint32_t kN = 64;
  LruPolicy lru(kN);
  std::vector<uint32_t> model;  // front = least recent
  uint64_t x = 12345;
  for (int step = 0; step < 20000; ++step) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t h = static_cast<uint32_t>((x >> 33) % kN);
    auto it = std::find(model.begin(), model.end(), h);
    switch ((x >> 20) % 3) {
      case 0:
        if (it == model.end()) {
          Insert(lru, h);
          model.push_back(h);
        }
        break;
      case 1:
        if (it != model.end()) {
          Touch(lru, h);
          model.erase(it);
          model.push_back(h);
        }
        break;
      case 2:
        Erase(lru, h);
        if (it != model.end()) model.erase(it);
        break;
    }
    ASSERT_EQ(lru.evictable_size(), model.size());
    if (model.empty()) {
      ASSERT_FALSE(lru.Victim().has_value());
    } else {
      ASSERT_EQ(lru.Victim(), model.front()) << "step " << step;
    }
  }
}

TEST(EvictionPolicyFactoryTest, KnownAndUnknownNames) {
  auto lru = MakeEvictionPolicy("lru", 4, 4);
  ASSERT_TRUE(lru.ok());
  EXPECT_EQ((*lru)->name(), "lru");
  EXPECT_FALSE((*lru)->leaves_only());
  auto adaptive = MakeEvictionPolicy("adaptive", 4, 4);
  ASSERT_TRUE(adaptive.ok());
  EXPECT_EQ((*adaptive)->name(), "adaptive");
  EXPECT_TRUE((*adaptive)->leaves_only());
  auto bad = MakeEvictionPolicy("fifo", 4, 4);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("fifo"), std::string_view::npos);
}

}  // namespace
}  // namespace kvtier
