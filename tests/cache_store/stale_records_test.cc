// StaleRecords: slots listed by key and by size class; Take hands out a slot of the class
// once, skipping slots removed since; bytes follow what is listed.
#include "cache_store/stale_records.h"

#include <gtest/gtest.h>

namespace kvtier {
namespace {

BlockKey Key(uint8_t tag) {
  BlockKey k;
  k.bytes.fill(tag);
  return k;
}

TEST(StaleRecordsTest, ListsByKeyAndClassAndHandsEachSlotOutOnce) {
  StaleRecords stale;
  stale.Add(10, Key(1), /*cls=*/0, 8192);
  stale.Add(11, Key(1), /*cls=*/0, 8192);
  stale.Add(20, Key(2), /*cls=*/1, 16384);
  EXPECT_EQ(stale.bytes(), 8192u + 8192u + 16384u);
  EXPECT_EQ(stale.OfKey(Key(1)), (std::vector<uint32_t>{10, 11}));
  EXPECT_TRUE(stale.OfKey(Key(3)).empty());

  EXPECT_TRUE(stale.Remove(11));
  EXPECT_FALSE(stale.Remove(11));  // not listed any more
  EXPECT_EQ(stale.Take(0), 10u);   // 11 was removed: skipped
  EXPECT_FALSE(stale.Take(0).has_value());
  EXPECT_TRUE(stale.OfKey(Key(1)).empty());
  EXPECT_FALSE(stale.Take(5).has_value());  // a class never seen
  EXPECT_EQ(stale.Take(1), 20u);
  EXPECT_EQ(stale.bytes(), 0u);
}

}  // namespace
}  // namespace kvtier
