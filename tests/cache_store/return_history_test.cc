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

TEST(ReturnHistoryTest, ZeroCapacityRemembersNothing) {
  ReturnHistory h(0);
  h.Insert(1);
  EXPECT_FALSE(h.Contains(1));
  EXPECT_FALSE(h.Take(1));
}

}  // namespace
}  // namespace kvtier
