#include "cache_store/prefix_index.h"

#include <gtest/gtest.h>

namespace kvtier {
namespace {

std::vector<BlockKey> Chain(size_t n) {
  std::vector<uint32_t> tokens(n * 4);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i);
  return ChainBlockKeys(NamespaceKey("t", 1, ""), tokens, 4);
}

TEST(PrefixIndexTest, InsertFindErase) {
  PrefixIndex index;
  std::vector<BlockKey> keys = Chain(2);
  EXPECT_TRUE(index.Insert(keys[0], 7));
  EXPECT_FALSE(index.Insert(keys[0], 8));  // no overwrite
  EXPECT_EQ(index.Find(keys[0]), 7u);
  EXPECT_FALSE(index.Find(keys[1]).has_value());
  EXPECT_TRUE(index.Erase(keys[0]));
  EXPECT_FALSE(index.Erase(keys[0]));
  EXPECT_EQ(index.size(), 0u);
}

TEST(PrefixIndexTest, MatchStopsAtFirstMissingBlock) {
  PrefixIndex index;
  std::vector<BlockKey> keys = Chain(5);
  index.Insert(keys[0], 0);
  index.Insert(keys[1], 1);
  index.Insert(keys[3], 3);  // a child whose parent (2) is missing
  EXPECT_EQ(index.MatchPrefix(keys), (std::vector<uint32_t>{0, 1}));
  index.Insert(keys[2], 2);
  EXPECT_EQ(index.MatchPrefix(keys), (std::vector<uint32_t>{0, 1, 2, 3}));
  index.Erase(keys[0]);
  EXPECT_TRUE(index.MatchPrefix(keys).empty());
}

}  // namespace
}  // namespace kvtier
