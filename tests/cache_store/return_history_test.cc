#include "cache_store/return_history.h"

#include <gtest/gtest.h>

namespace kvtier {
namespace {

TEST(ReturnHistoryTest, RemembersTheLastKeysOnly) {
  ReturnHistory h(3);
  for (uint64_t k = 1; k <= 5; ++k) h.Insert(k);
  EXPECT_FALSE(h.Contains(1));
  EXPECT_FALSE(h.Contains(2));
  EXPECT_TRUE(h.Contains(3));
  EXPECT_TRUE(h.Contains(5));
  EXPECT_EQ(h.size(), 3u);
}

TEST(ReturnHistoryTest, TakeCountsAReturnOnce) {
  ReturnHistory h(4);
  h.Insert(7);
  EXPECT_TRUE(h.Take(7));
  EXPECT_FALSE(h.Take(7));
  EXPECT_FALSE(h.Contains(7));
}

TEST(ReturnHistoryTest, AKeyInsertedAgainSurvivesItsOlderRecord) {
  ReturnHistory h(3);
  h.Insert(1);
  h.Insert(2);
  h.Insert(1);  // newest record of 1
  h.Insert(3);  // overwrites the ring position of the first 1
  EXPECT_TRUE(h.Contains(1));
  h.Insert(4);  // overwrites 2
  EXPECT_FALSE(h.Contains(2));
  EXPECT_TRUE(h.Contains(1));
}

TEST(ReturnHistoryTest, TagsComeBackWithATakeOrWhenARecordIsForgottenUnreturned) {
  ReturnHistory h(3);
  EXPECT_EQ(h.Insert(1, 10), std::nullopt);
  EXPECT_EQ(h.Insert(2, 20), std::nullopt);
  EXPECT_EQ(h.Take(2), std::optional<uint16_t>(20));
  EXPECT_EQ(h.Insert(3, 30), std::nullopt);
  EXPECT_EQ(h.Insert(4, 40), std::optional<uint16_t>(10));  // 1 forgotten unreturned
  EXPECT_EQ(h.Insert(3, 31), std::nullopt);  // into 2's position: 2 was taken
  // 3's older record is superseded by the newer one, not forgotten unreturned.
  EXPECT_EQ(h.Insert(5, 50), std::nullopt);
  EXPECT_EQ(h.Insert(6, 60), std::optional<uint16_t>(40));
  EXPECT_EQ(h.Take(3), std::optional<uint16_t>(31));
}

TEST(ReturnHistoryTest, ZeroCapacityRemembersNothing) {
  ReturnHistory h(0);
  h.Insert(1);
  EXPECT_FALSE(h.Contains(1));
  EXPECT_FALSE(h.Take(1));
}

}  // namespace
}  // namespace kvtier
