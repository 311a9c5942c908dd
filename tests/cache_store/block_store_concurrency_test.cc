// Many threads putting, looking up, reading, pinning and deleting overlapping prefixes in
// a store small enough to evict constantly. Every byte read must be the byte that was
// put for that key, and the accounting must balance at the end.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "cache_store/block_store.h"
#include "tests/cache_store/test_blocks.h"

namespace kvtier {
namespace {

using ::kvtier::testing::KeysOf;
using ::kvtier::testing::PayloadFor;
using ::kvtier::testing::PutBlocks;
using ::kvtier::testing::SmallLayout;
using ::kvtier::testing::SmallStoreOptions;

// Run without and with the SSD tier (demotions and promotions on every few operations).
class BlockStoreConcurrencyTest : public ::testing::TestWithParam<bool> {};

TEST_P(BlockStoreConcurrencyTest, MixedOperationsKeepDataAndAccountingCorrect) {
  constexpr uint32_t kSlots = 24;
  constexpr uint32_t kT2Slots = 48;
  constexpr int kThreads = 8;
  constexpr int kOpsPerThread = 1500;
  const bool with_t2 = GetParam();
  BlockStoreOptions options = SmallStoreOptions(kSlots);
  if (with_t2) {
    const std::string dir = ::testing::TempDir() + "/kvtier_concurrency_t2";
    std::filesystem::remove_all(dir);
    options.t2 = {.directory = dir, .capacity_bytes = kT2Slots * 4096};
    options.t2_admit_min_score = 0;
    options.t2_admit_min_return = 0;
  }
  auto created = BlockStore::Create(options);
  ASSERT_TRUE(created.ok());
  BlockStore& store = **created;
  const KvLayout layout = SmallLayout();

  // Prompts share prefixes: 4 "system prompts" × 8 continuations, 6 blocks each.
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t sys = 0; sys < 4; ++sys) {
    for (uint32_t cont = 0; cont < 8; ++cont) {
      std::vector<uint32_t> t;
      for (uint32_t i = 0; i < 8; ++i) t.push_back(sys * 1000 + i);
      for (uint32_t i = 0; i < 16; ++i) t.push_back(100000 + sys * 1000 + cont * 100 + i);
      prompts.push_back(t);
    }
  }

  std::atomic<uint64_t> bytes_checked{0};
  std::atomic<int> failures{0};
  auto worker = [&](int seed) {
    std::mt19937 rng(seed);
    const std::string tenant = (seed % 2) ? "a" : "b";
    for (int op = 0; op < kOpsPerThread; ++op) {
      const std::vector<uint32_t>& tokens = prompts[rng() % prompts.size()];
      const uint32_t blocks = static_cast<uint32_t>(tokens.size() / layout.tokens_per_block);
      switch (rng() % 5) {
        case 0:
        case 1: {
          uint32_t first = rng() % blocks;
          uint32_t n = 1 + rng() % (blocks - first);
          absl::StatusOr<PutResult> r = PutBlocks(store, tenant, layout, tokens, first, n);
          if (!r.ok() && r.status().code() != absl::StatusCode::kResourceExhausted) {
            ++failures;
          }
          break;
        }
        case 2:
        case 3: {
          absl::StatusOr<LookupResult> l =
              store.Lookup({.tenant = tenant, .layout = &layout, .tokens = tokens}, {});
          if (!l.ok()) {
            if (l.status().code() != absl::StatusCode::kResourceExhausted) ++failures;
            break;
          }
          if (l->lease_id == 0) break;
          auto read = store.ReadLease(tenant, l->lease_id);
          if (!read.ok()) {
            // The only acceptable failure: another thread deleted a leased block.
            if (read.status().code() != absl::StatusCode::kNotFound ||
                read.status().message().find("deleted") == absl::string_view::npos) {
              ADD_FAILURE() << read.status();
              ++failures;
            }
          } else {
            for (const BlockView& v : (*read)->blocks()) {
              std::vector<uint8_t> expected = PayloadFor(v.key, v.size);
              if (std::memcmp(v.data, expected.data(), v.size) != 0) ++failures;
              bytes_checked += v.size;
            }
          }
          if (!store.Release(tenant, l->lease_id).ok()) ++failures;
          break;
        }
        case 4: {
          std::vector<BlockKey> keys = KeysOf(tenant, layout, tokens);
          std::span<const BlockKey> one(&keys[rng() % keys.size()], 1);
          // The block may or may not be cached right now; both answers are fine.
          if (rng() % 2) {
            (void)store.Pin(tenant, one, absl::Milliseconds(1));
          } else {
            (void)store.Delete(tenant, one);
          }
          break;
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t + 1);
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(bytes_checked.load(), 0u);
  BlockStoreStats stats = store.Stats();
  EXPECT_LE(stats.t1_used_blocks, kSlots);
  EXPECT_EQ(stats.t1_reserved_blocks, 0u);
  EXPECT_EQ(stats.active_leases, 0u);
  EXPECT_EQ(stats.checksum_failures, 0u);
  if (with_t2) {
    EXPECT_LE(stats.t2_used_blocks, kT2Slots);
    EXPECT_GT(stats.demoted_blocks, 0u);
    EXPECT_GT(stats.promoted_blocks, 0u);
    EXPECT_GT(stats.t2_evicted_blocks, 0u);
    EXPECT_EQ(stats.t2_write_errors + stats.t2_read_errors, 0u);
  } else {
    EXPECT_GT(stats.evicted_blocks, 0u);
  }
  // Every used slot holds a block that still verifies.
  absl::SleepFor(absl::Milliseconds(5));  // let the 1 ms pins lapse
  for (const auto& tokens : prompts) {
    for (const char* tenant : {"a", "b"}) {
      absl::StatusOr<LookupResult> l =
          store.Lookup({.tenant = tenant, .layout = &layout, .tokens = tokens}, {});
      ASSERT_TRUE(l.ok());
      if (l->lease_id == 0) continue;
      EXPECT_TRUE(store.ReadLease(tenant, l->lease_id).ok());
      EXPECT_TRUE(store.Release(tenant, l->lease_id).ok());
    }
  }
  // With nothing protected, the whole arena can be reclaimed by new blocks.
  std::vector<uint32_t> fill(kSlots * layout.tokens_per_block, 424242);
  for (size_t i = 0; i < fill.size(); ++i) fill[i] += static_cast<uint32_t>(i);
  absl::StatusOr<PutResult> r = PutBlocks(store, "c", layout, fill, 0, kSlots);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(store.Stats().t1_used_blocks, kSlots);
}

INSTANTIATE_TEST_SUITE_P(Tiers, BlockStoreConcurrencyTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "T1AndT2" : "T1Only";
                         });

}  // namespace
}  // namespace kvtier
