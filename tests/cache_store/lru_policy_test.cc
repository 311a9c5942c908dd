#include "cache_store/lru_policy.h"

#include <gtest/gtest.h>

namespace kvtier {
namespace {

TEST(LruPolicyTest, EvictsLeastRecentlyUsed) {
  LruPolicy lru(8);
  for (uint32_t h : {0u, 1u, 2u, 3u}) lru.Insert(h);
  EXPECT_EQ(lru.Victim(), 0u);
  lru.Touch(0);
  EXPECT_EQ(lru.Victim(), 1u);
  lru.Erase(1);
  EXPECT_EQ(lru.Victim(), 2u);
  EXPECT_EQ(lru.size(), 3u);
  EXPECT_FALSE(lru.Contains(1));
  lru.Erase(1);  // erasing an absent handle is a no-op
  lru.Erase(2);
  lru.Erase(3);
  EXPECT_EQ(lru.Victim(), 0u);
  lru.Erase(0);
  EXPECT_FALSE(lru.Victim().has_value());
  EXPECT_EQ(lru.size(), 0u);
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
          lru.Insert(h);
          model.push_back(h);
        }
        break;
      case 1:
        if (it != model.end()) {
          lru.Touch(h);
          model.erase(it);
          model.push_back(h);
        }
        break;
      case 2:
        lru.Erase(h);
        if (it != model.end()) model.erase(it);
        break;
    }
    ASSERT_EQ(lru.size(), model.size());
    if (model.empty()) {
      ASSERT_FALSE(lru.Victim().has_value());
    } else {
      ASSERT_EQ(lru.Victim(), model.front()) << "step " << step;
    }
  }
}

TEST(EvictionPolicyFactoryTest, KnownAndUnknownNames) {
  auto lru = MakeEvictionPolicy("lru", 4);
  ASSERT_TRUE(lru.ok());
  EXPECT_EQ((*lru)->name(), "lru");
  auto bad = MakeEvictionPolicy("fifo", 4);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("fifo"), std::string_view::npos);
}

}  // namespace
}  // namespace kvtier
