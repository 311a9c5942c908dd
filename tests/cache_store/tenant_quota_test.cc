// Per-tenant quotas: the quota file's grammar, and the store keeping each tenant inside its
// limit and above its guarantee whatever the others do.
#include "cache_store/tenant_quota.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cache_store/block_store.h"
#include "cache_store/tenant_ledger.h"
#include "tests/cache_store/test_blocks.h"

namespace kvtier {
namespace {

using testing::PutBlocks;
using testing::SmallLayout;
using testing::SmallStoreOptions;
using testing::Tokens;

constexpr uint64_t kBlock = 1024;  // SmallLayout's block

TEST(ByteSizeTest, ParsesUnitsAndRefusesTheRest) {
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(*ParseByteSize("4KiB"), 4096u);
  EXPECT_EQ(*ParseByteSize("3GiB"), uint64_t{3} << 30);
  EXPECT_EQ(*ParseByteSize("2M"), 2000000u);
  EXPECT_EQ(*ParseByteSize("1TiB"), uint64_t{1} << 40);
  for (const char* bad : {"", "GiB", "-1", "1.5GiB", "4 GiB", "4gib", "4XB"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
  EXPECT_NE(ParseByteSize("99999999999999999999TiB").status().message().find("not a size"),
            std::string_view::npos);
  EXPECT_NE(ParseByteSize("99999999999TiB").status().message().find("overflows"),
            std::string_view::npos);
}

TEST(TenantQuotaFileTest, TenantsTakeTheDefaultsForKeysTheyLeaveOut) {
  const TenantQuota flags{.t1_limit = 4096};
  absl::StatusOr<TenantQuotas> q = ParseTenantQuotas(
      "# quotas\n"
      "team-a  t1_guarantee=1KiB t2_limit=2MiB   # a comment\n"
      "\n"
      "*       t2_limit=5M\n"
      "team-b  t1_limit=0 t2_guarantee=10\n",
      "q.txt", flags);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(q->enabled());
  EXPECT_EQ(q->For("team-a"), (TenantQuota{.t1_guarantee = 1024, .t1_limit = 4096,
                                           .t2_limit = 2 << 20}));
  EXPECT_EQ(q->For("team-b"), (TenantQuota{.t1_limit = 0, .t2_guarantee = 10, .t2_limit = 5000000}));
  EXPECT_EQ(q->For("anyone"), (TenantQuota{.t1_limit = 4096, .t2_limit = 5000000}));
  EXPECT_FALSE(TenantQuotas{}.enabled());
}

TEST(TenantQuotaFileTest, MalformedLinesAreRefusedByLine) {
  const struct {
    const char* text;
    const char* says;
  } cases[] = {
      {"a\n", "q:1: expected TENANT"},
      {"ok t1_limit=1\nbad name t1_limit=1\n", "q:2: \"name\" is not KEY=BYTES"},
      {"a t1_limit\n", "is not KEY=BYTES"},
      {"a t3_limit=1\n", "unknown key \"t3_limit\""},
      {"a t1_limit=1x\n", "unknown unit"},
      {"a t1_limit=1 t1_limit=2\n", "given twice"},
      {"a t1_limit=1\na t1_limit=2\n", "q:2: tenant a twice"},
      {"* t1_guarantee=1\n", "cannot guarantee"},
      {"* t1_limit=1\n* t1_limit=2\n", "a second * line"},
      {"a t1_guarantee=2 t1_limit=1\n", "t1_guarantee 2 exceeds t1_limit 1"},
      {"* t1_limit=1\na t1_guarantee=2\n", "t1_guarantee 2 exceeds t1_limit 1"},
      {"a/b t1_limit=1\n", "is not a tenant name"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<TenantQuotas> q = ParseTenantQuotas(c.text, "q", {});
    ASSERT_FALSE(q.ok()) << c.text;
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(q.status().message().find(c.says), std::string_view::npos)
        << c.text << " -> " << q.status();
  }
  EXPECT_EQ(LoadTenantQuotaFile("/nonexistent/q", {}).status().code(),
            absl::StatusCode::kNotFound);
  const std::string path = ::testing::TempDir() + "/kvtier_quota_file";
  std::ofstream(path) << "team t1_limit=1GiB\n";
  absl::StatusOr<TenantQuotas> loaded = LoadTenantQuotaFile(path, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->For("team").t1_limit, uint64_t{1} << 30);
}

TEST(TenantQuotaFileTest, GuaranteesMustFitTheTiers) {
  TenantQuotas q;
  q.tenants["a"] = {.t1_guarantee = 600};
  q.tenants["b"] = {.t1_guarantee = 500, .t2_guarantee = 1};
  EXPECT_NE(q.ValidateAgainstCapacity(1000, 10).message().find("T1 guarantees add up to 1100"),
            std::string_view::npos);
  EXPECT_NE(q.ValidateAgainstCapacity(2000, 0).message().find("no T2"), std::string_view::npos);
  EXPECT_TRUE(q.ValidateAgainstCapacity(1100, 1).ok());
  BlockStoreOptions o = SmallStoreOptions(1);
  q.tenants["a"].t1_guarantee = 1 << 20;
  o.quotas = q;
  EXPECT_EQ(BlockStore::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

std::unique_ptr<BlockStore> StoreWith(uint32_t slots, TenantQuotas quotas) {
  BlockStoreOptions o = SmallStoreOptions(slots);
  o.eviction_policy = "lru";
  o.quotas = std::move(quotas);
  absl::StatusOr<std::unique_ptr<BlockStore>> s = BlockStore::Create(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

// Cached blocks of the prompt (without a lease).
uint32_t Cached(BlockStore& store, std::string_view tenant, const std::vector<uint32_t>& tokens) {
  const KvLayout layout = SmallLayout();
  absl::StatusOr<LookupResult> r = store.Lookup(
      {.tenant = tenant, .layout = &layout, .tokens = tokens}, {.lease = false,
                                                                  .report_present = true});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? static_cast<uint32_t>(r->keys.size()) : 0;
}

// Learners name a tenant's blocks of one size class with or without quotas (the policy
// learns per learner); with quotas they are the partitions, without quotas a partition is
// the size class, shared.
TEST(TenantLedgerTest, LearnersAreTenantsBlocksOfOneClassWithOrWithoutQuotas) {
  TenantLedger open_store(TenantQuotas{});
  const uint32_t a = open_store.Acquire("a");
  const uint32_t b = open_store.Acquire("b");
  EXPECT_EQ(open_store.PartitionOf(Tier::kHostDram, 3, a), 3u);
  EXPECT_EQ(open_store.PartitionOf(Tier::kHostDram, 3, b), 3u);
  const uint32_t a3 = open_store.LearnerOf(Tier::kHostDram, 3, a);
  const uint32_t b3 = open_store.LearnerOf(Tier::kHostDram, 3, b);
  const uint32_t a4 = open_store.LearnerOf(Tier::kHostDram, 4, a);
  EXPECT_NE(a3, b3);
  EXPECT_NE(a3, a4);
  EXPECT_NE(b3, a4);
  EXPECT_EQ(open_store.LearnerOf(Tier::kHostDram, 3, a), a3);  // stable
  EXPECT_LT(std::max({a3, b3, a4}), 3u);                        // dense

  TenantQuotas quotas;
  quotas.tenants["a"] = {.t1_limit = 1 << 20};
  TenantLedger quota_store(quotas);
  const uint32_t qa = quota_store.Acquire("a");
  const uint32_t qb = quota_store.Acquire("b");
  for (uint32_t id : {qa, qb}) {
    for (int cls : {0, 5}) {
      EXPECT_EQ(quota_store.LearnerOf(Tier::kHostDram, cls, id),
                quota_store.PartitionOf(Tier::kHostDram, cls, id));
    }
  }
  EXPECT_NE(quota_store.LearnerOf(Tier::kHostDram, 0, qa),
            quota_store.LearnerOf(Tier::kHostDram, 0, qb));
}

TEST(TenantQuotaStoreTest, ATenantAtItsLimitEvictsItsOwnBlocksNotAnothers) {
  TenantQuotas q;
  q.tenants["greedy"] = {.t1_limit = 4 * kBlock};
  auto store = StoreWith(16, q);
  const KvLayout layout = SmallLayout();
  const std::vector<uint32_t> quiet = Tokens(4 * 4, 1);
  ASSERT_TRUE(PutBlocks(*store, "quiet", layout, quiet, 0, 4).ok());
  for (uint32_t seed = 10; seed < 20; ++seed) {
    const std::vector<uint32_t> t = Tokens(3 * 4, seed);
    ASSERT_TRUE(PutBlocks(*store, "greedy", layout, t, 0, 3).ok());
    EXPECT_LE(store->UsageOf("greedy").t1_bytes, 4 * kBlock);
  }
  // The store had room for both (16 slots), but greedy never held more than its limit, and
  // made that room among its own blocks.
  EXPECT_EQ(Cached(*store, "quiet", quiet), 4u);
  const TenantUsage greedy = store->UsageOf("greedy");
  EXPECT_EQ(greedy.t1_bytes, 4 * kBlock);
  EXPECT_EQ(greedy.t1_blocks, 4u);
  EXPECT_EQ(greedy.t1_limit_evictions, 30u - 4u);
  EXPECT_EQ(Cached(*store, "greedy", Tokens(3 * 4, 19)), 3u);  // the newest stay
  const BlockStoreStats stats = store->Stats();
  EXPECT_TRUE(stats.quotas_enabled);
  ASSERT_EQ(stats.tenants.size(), 2u);
  EXPECT_EQ(stats.tenants[0].tenant, "greedy");  // most bytes first
  EXPECT_EQ(stats.tenants[1].tenant, "quiet");
  EXPECT_EQ(stats.tenants[1].t1_bytes, 4 * kBlock);
}

TEST(TenantQuotaStoreTest, AGuaranteeSurvivesAFloodThatFillsTheStore) {
  TenantQuotas q;
  q.tenants["protected"] = {.t1_guarantee = 6 * kBlock};
  auto store = StoreWith(16, q);
  const KvLayout layout = SmallLayout();
  const std::vector<uint32_t> mine = Tokens(6 * 4, 1);
  ASSERT_TRUE(PutBlocks(*store, "protected", layout, mine, 0, 6).ok());
  // The flood: far more than the store, never reused; the protected blocks are the oldest
  // (LRU's first victims without a guarantee).
  for (uint32_t seed = 100; seed < 200; ++seed) {
    ASSERT_TRUE(PutBlocks(*store, "flood", layout, Tokens(2 * 4, seed), 0, 2).ok());
  }
  EXPECT_EQ(Cached(*store, "protected", mine), 6u);
  EXPECT_EQ(store->UsageOf("flood").t1_blocks, 10u);  // everything else
  // Without the quota the flood takes them.
  auto plain = StoreWith(16, {});
  ASSERT_TRUE(PutBlocks(*plain, "protected", layout, mine, 0, 6).ok());
  for (uint32_t seed = 100; seed < 200; ++seed) {
    ASSERT_TRUE(PutBlocks(*plain, "flood", layout, Tokens(2 * 4, seed), 0, 2).ok());
  }
  EXPECT_EQ(Cached(*plain, "protected", mine), 0u);
}

TEST(TenantQuotaStoreTest, BelowItsGuaranteeATenantGrowsIntoItAgainstFresherBlocks) {
  TenantQuotas q;
  q.tenants["b"] = {.t1_guarantee = 6 * kBlock};
  auto store = StoreWith(16, q);
  const KvLayout layout = SmallLayout();
  uint32_t seed = 1000;
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(PutBlocks(*store, "a", layout, Tokens(4, seed++), 0, 1).ok());
  }
  // b's blocks soon become the least recent, yet each new one takes a's room until b holds
  // its guarantee; from then on b's own oldest go first.
  for (uint32_t round = 0; round < 12; ++round) {
    ASSERT_TRUE(PutBlocks(*store, "b", layout, Tokens(4, round), 0, 1).ok());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(PutBlocks(*store, "a", layout, Tokens(4, seed++), 0, 1).ok());
    }
    EXPECT_EQ(store->UsageOf("b").t1_blocks, std::min<uint64_t>(round + 1, 6));
  }
  EXPECT_EQ(store->UsageOf("a").t1_blocks, 10u);
}

TEST(TenantQuotaStoreTest, AboveItsGuaranteeATenantCompetesAsUsual) {
  TenantQuotas q;
  q.tenants["a"] = {.t1_guarantee = 2 * kBlock};
  auto store = StoreWith(8, q);
  const KvLayout layout = SmallLayout();
  const std::vector<uint32_t> a = Tokens(6 * 4, 1);
  ASSERT_TRUE(PutBlocks(*store, "a", layout, a, 0, 6).ok());
  for (uint32_t seed = 100; seed < 150; ++seed) {
    ASSERT_TRUE(PutBlocks(*store, "b", layout, Tokens(4, seed), 0, 1).ok());
  }
  // a kept exactly its guarantee: its other 4 blocks were fair game.
  EXPECT_EQ(store->UsageOf("a").t1_blocks, 2u);
  EXPECT_EQ(store->UsageOf("b").t1_blocks, 6u);
}

TEST(TenantQuotaStoreTest, AtItsLimitWithNothingEvictableAPutIsRefusedByName) {
  TenantQuotas q;
  q.tenants["t"] = {.t1_limit = 2 * kBlock};
  auto store = StoreWith(16, q);
  const KvLayout layout = SmallLayout();
  const std::vector<uint32_t> first = Tokens(2 * 4, 1);
  ASSERT_TRUE(PutBlocks(*store, "t", layout, first, 0, 2).ok());
  absl::StatusOr<LookupResult> leased =
      store->Lookup({.tenant = "t", .layout = &layout, .tokens = first}, {});
  ASSERT_TRUE(leased.ok());
  ASSERT_EQ(leased->prefix_blocks, 2u);
  absl::StatusOr<PutResult> refused = PutBlocks(*store, "t", layout, Tokens(4, 2), 0, 1);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("tenant t is at its T1 limit of 2048 bytes"),
            std::string_view::npos)
      << refused.status();
  // Another tenant is not affected, and the refused Put left no charge behind.
  EXPECT_TRUE(PutBlocks(*store, "u", layout, Tokens(4, 3), 0, 1).ok());
  EXPECT_EQ(store->UsageOf("t").t1_bytes, 2 * kBlock);
  ASSERT_TRUE(store->Release("t", leased->lease_id).ok());
  EXPECT_TRUE(PutBlocks(*store, "t", layout, Tokens(4, 2), 0, 1).ok());
  EXPECT_EQ(store->UsageOf("t").t1_bytes, 2 * kBlock);
}

TEST(TenantQuotaStoreTest, UsageReturnsToZeroWhenTheBlocksGo) {
  TenantQuotas q;
  q.defaults = {.t1_limit = 8 * kBlock};
  auto store = StoreWith(16, q);
  const KvLayout layout = SmallLayout();
  const std::vector<uint32_t> t = Tokens(3 * 4, 1);
  absl::StatusOr<PutResult> put = PutBlocks(*store, "x", layout, t, 0, 3);
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(store->UsageOf("x").t1_blocks, 3u);
  EXPECT_EQ(store->UsageOf("x").quota.t1_limit, 8 * kBlock);
  ASSERT_TRUE(store->Delete("x", put->keys).ok());
  const TenantUsage gone = store->UsageOf("x");
  EXPECT_EQ(gone.t1_bytes, 0u);
  EXPECT_EQ(gone.t1_blocks, 0u);
  EXPECT_TRUE(store->Stats().tenants.empty());
  // An abandoned Put refunds its reservation.
  {
    absl::StatusOr<std::unique_ptr<PendingPut>> pending = store->BeginPut(
        {.prompt = {.tenant = "x", .layout = &layout, .tokens = t}, .num_blocks = 3});
    ASSERT_TRUE(pending.ok());
    EXPECT_EQ(store->UsageOf("x").t1_bytes, 3 * kBlock);  // reserved counts
  }
  EXPECT_EQ(store->UsageOf("x").t1_bytes, 0u);
}

TEST(TenantQuotaStoreTest, RacingPutsNeverTakeATenantPastItsLimit) {
  TenantQuotas q;
  q.tenants["racer"] = {.t1_limit = 8 * kBlock};
  auto store = StoreWith(64, q);
  const KvLayout layout = SmallLayout();
  std::atomic<bool> over{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (uint32_t i = 0; i < 200; ++i) {
        const std::vector<uint32_t> t = Tokens(2 * 4, 1000 * w + i);
        (void)PutBlocks(*store, "racer", layout, t, 0, 2);
        if (store->UsageOf("racer").t1_bytes > 8 * kBlock) over = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(over.load());
  EXPECT_LE(store->UsageOf("racer").t1_bytes, 8 * kBlock);
  EXPECT_GT(store->UsageOf("racer").t1_blocks, 0u);
}

TEST(TenantQuotaStoreTest, T2LimitKeepsATenantsDemotionsToItsShare) {
  const std::string dir = ::testing::TempDir() + "/kvtier_quota_t2";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  BlockStoreOptions o = SmallStoreOptions(8);
  o.eviction_policy = "lru";
  o.t2 = {.directory = dir, .capacity_bytes = 32 * SsdTier::SlotBytesFor(4096)};
  o.t2_admit_min_score = 0;
  o.t2_admit_min_return = 0;
  o.quotas.tenants["a"] = {.t2_limit = 3 * kBlock};
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Create(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const KvLayout layout = SmallLayout();
  for (uint32_t seed = 0; seed < 20; ++seed) {
    ASSERT_TRUE(PutBlocks(**store, "a", layout, Tokens(4, seed), 0, 1).ok());
    ASSERT_TRUE(PutBlocks(**store, "b", layout, Tokens(4, 500 + seed), 0, 1).ok());
    EXPECT_LE((*store)->UsageOf("a").t2_bytes, 3 * kBlock);
  }
  EXPECT_EQ((*store)->UsageOf("a").t2_blocks, 3u);
  EXPECT_GT((*store)->UsageOf("b").t2_blocks, 3u);
  EXPECT_GT((*store)->UsageOf("a").t2_limit_evictions, 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvtier
