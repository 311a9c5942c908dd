// PagePool: hard capacity, the prefix cache by key, LRU eviction of safe pages only.
#include "worker/page_pool.h"

#include <gtest/gtest.h>

#include <string>

namespace kvtier::worker {
namespace {

BlockKey Key(uint8_t n) {
  BlockKey k;
  k.bytes[0] = n;
  return k;
}

std::unique_ptr<PagePool> MakePool(uint32_t pages) {
  KvLayout layout{.model_id = "m",
                  .num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 64,
                  .dtype = DType::kBf16,
                  .tokens_per_block = 16};
  absl::StatusOr<std::unique_ptr<PagePool>> pool =
      PagePool::Create(layout, pages, kernels::Backend::kCpu);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return *std::move(pool);
}

TEST(PagePoolTest, CapacityIsHard) {
  auto pool = MakePool(3);
  EXPECT_EQ(pool->page_bytes(), 2u * 2 * 16 * 2 * 64 * 2);
  std::vector<uint32_t> pages;
  for (int i = 0; i < 3; ++i) pages.push_back(*pool->Allocate());
  EXPECT_EQ(pool->Allocate().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pool->counts().active, 3u);
  pool->Release(pages[1]);  // unkeyed: back to free
  EXPECT_EQ(pool->counts().free, 1u);
  EXPECT_EQ(*pool->Allocate(), pages[1]);
  EXPECT_EQ(PagePool::Create(pool->layout(), 0, kernels::Backend::kCpu).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PagePoolTest, PublishedPagesAreFoundByKeyAndSharedWhileActive) {
  auto pool = MakePool(4);
  const uint32_t a = *pool->Allocate();
  pool->PageData(a)[0] = 42;
  EXPECT_TRUE(pool->Publish(a, Key(1), /*safe=*/true));
  EXPECT_TRUE(pool->IsKeyed(a));
  const uint32_t b = *pool->Allocate();
  EXPECT_FALSE(pool->Publish(b, Key(1), true)) << "a key names one page";
  EXPECT_FALSE(pool->IsKeyed(b));
  EXPECT_EQ(pool->Acquire(Key(1)), a);  // refs 2
  pool->Release(a);
  pool->Release(a);  // now cached
  EXPECT_EQ(pool->counts().cached, 1u);
  EXPECT_EQ(pool->Acquire(Key(1)), a);
  EXPECT_EQ(pool->PageData(a)[0], 42);
  EXPECT_FALSE(pool->Acquire(Key(2)).has_value());
}

TEST(PagePoolTest, EvictsTheLeastRecentSafePageOnly) {
  auto pool = MakePool(3);
  const uint32_t a = *pool->Allocate(), b = *pool->Allocate(), c = *pool->Allocate();
  pool->Publish(a, Key(1), /*safe=*/false);  // offload in flight
  pool->Publish(b, Key(2), /*safe=*/true);
  pool->Publish(c, Key(3), /*safe=*/true);
  pool->Release(a);
  pool->Release(b);
  pool->Release(c);
  EXPECT_EQ(pool->counts().unsafe, 1u);
  // a is the least recent but unsafe: b goes first, then c; then nothing.
  EXPECT_EQ(*pool->Allocate(), b);
  EXPECT_FALSE(pool->Acquire(Key(2)).has_value());
  EXPECT_EQ(*pool->Allocate(), c);
  EXPECT_EQ(pool->Allocate().status().code(), absl::StatusCode::kResourceExhausted);
  pool->MarkSafe(Key(1));
  EXPECT_EQ(*pool->Allocate(), a);
  EXPECT_EQ(pool->counts().evictions, 3u);
}

TEST(PagePoolTest, AnAcquiredPageIsNeverEvicted) {
  auto pool = MakePool(1);
  const uint32_t a = *pool->Allocate();
  pool->Publish(a, Key(9), true);
  pool->Release(a);
  ASSERT_EQ(pool->Acquire(Key(9)), a);
  EXPECT_EQ(pool->Allocate().status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace kvtier::worker
