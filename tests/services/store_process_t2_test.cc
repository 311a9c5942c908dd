// The real kvtier-store binary with an SSD tier (--t2_dir): blocks pushed out of T1 are
// served from T2, T2 hits are served in place, and a restart finds the blocks again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cache_store_client.h"
#include "tests/services/store_process.h"
#include "tests/services/test_prompts.h"

namespace kvtier {
namespace {

using ::kvtier::testing::HttpGet;
using ::kvtier::testing::StoreProcess;
using ::kvtier::testing::Tokens;

// Three prompts of 32 blocks (16 KiB each) for a store of 64 T1 slots and a T2 that takes
// every victim: Put in order, the first ends up in T2.
struct T2Prompts {
  explicit T2Prompts(uint32_t seed) {
    for (uint32_t p = 0; p < 3; ++p) {
      prompts.push_back(Tokens(32 * 16, seed + p));
      std::vector<uint8_t> bytes(32 * layout.BlockBytes());
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 31 + p);
      payloads.push_back(std::move(bytes));
    }
  }
  static std::vector<std::string> Flags(const std::string& dir) {
    return {"--t1_bytes=4194304", "--t1_min_slot_bytes=65536", "--t2_dir=" + dir,
            "--t2_bytes=16777216", "--t2_admit_min_return=0"};
  }
  void PutAll(CacheStoreClient& client) const {
    for (uint32_t p = 0; p < 3; ++p) {
      ASSERT_TRUE(client.Put(layout, prompts[p], 0, payloads[p]).ok()) << "prompt " << p;
    }
  }
  // Looks prompt p up (every block in `tier`), fetches it and checks every byte.
  void Fetch(CacheStoreClient& client, uint32_t p, v1::Tier tier) const {
    const uint64_t bb = layout.BlockBytes();
    absl::StatusOr<LookupReply> found = client.Lookup(layout, prompts[p]);
    ASSERT_TRUE(found.ok()) << found.status();
    ASSERT_EQ(found->matched_blocks, 32u);
    for (v1::Tier t : found->tiers) EXPECT_EQ(t, tier);
    std::vector<uint8_t> got(32 * bb);
    std::vector<std::span<uint8_t>> out;
    for (uint32_t i = 0; i < 32; ++i) out.emplace_back(got.data() + i * bb, bb);
    ASSERT_TRUE(client.Fetch({.lease_id = found->lease_id}, out).ok());
    EXPECT_EQ(got, payloads[p]);
    ASSERT_TRUE(client.Release(found->lease_id).ok());
  }

  const KvLayout layout{.model_id = "tiny",
                        .num_layers = 2,
                        .num_kv_heads = 2,
                        .head_dim = 64,
                        .dtype = DType::kFp16,
                        .tokens_per_block = 16};  // 16 KiB blocks
  std::vector<std::vector<uint32_t>> prompts;
  std::vector<std::vector<uint8_t>> payloads;
};

// The store's Stats once `done` holds for them, or the last ones after 10 s.
absl::StatusOr<v1::StatsResponse> StatsOnce(
    CacheStoreClient& client, absl::FunctionRef<bool(const v1::StatsResponse&)> done) {
  absl::StatusOr<v1::StatsResponse> stats = client.Stats();
  for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
       stats.ok() && !done(*stats) && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(10));
    stats = client.Stats();
  }
  return stats;
}

// The SSD tier as an operator sees it: blocks pushed out of T1 are served from T2, and a
// store restarted on the same directory serves them again, byte for byte.
TEST(StoreProcessTest, T2ServesEvictedBlocksAndSurvivesARestart) {
  const std::string dir = ::testing::TempDir() + "/kvtier_process_t2";
  std::filesystem::remove_all(dir);
  std::vector<std::string> flags = T2Prompts::Flags(dir);
  flags.push_back("--t2_admit_min_score=0");
  flags.push_back("--t2_promote_after_reads=1");  // the default (8) is the next test's
  const T2Prompts t2(100);
  {
    auto store = StoreProcess::Start(flags);
    ASSERT_TRUE(store.ok()) << store.status();
    CacheStoreClient client({.target = (*store)->target()});
    ASSERT_NO_FATAL_FAILURE(t2.PutAll(client));
    t2.Fetch(client, 0, v1::TIER_LOCAL_SSD);
    // A streaming Fetch sends each block as its disk read ends; the promotion into T1 is
    // settled after the last read, so it can land just after the client has every byte.
    absl::StatusOr<v1::StatsResponse> stats =
        StatsOnce(client, [](const v1::StatsResponse& s) { return s.promoted_blocks() >= 32; });
    ASSERT_TRUE(stats.ok());
    ASSERT_EQ(stats->tiers_size(), 2);
    EXPECT_EQ(stats->tiers(1).tier(), v1::TIER_LOCAL_SSD);
    EXPECT_EQ(stats->tiers(1).hit_blocks(), 32u);
    EXPECT_GE(stats->demoted_blocks(), 32u);
    EXPECT_EQ(stats->promoted_blocks(), 32u);
    absl::StatusOr<std::string> metrics = HttpGet((*store)->metrics_port(), "/metrics");
    ASSERT_TRUE(metrics.ok());
    EXPECT_THAT(*metrics, ::testing::HasSubstr("kvtier_promotions_total 32"));
    EXPECT_THAT(*metrics, ::testing::HasSubstr("kvtier_tier_hit_blocks_total{tier=\"t2\"} 32"));
    (*store)->Signal(SIGTERM);
    ASSERT_EQ((*store)->Wait(absl::Seconds(30)), 0);
  }
  auto store = StoreProcess::Start(flags);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT((*store)->Log(), ::testing::HasSubstr("blocks recovered"));
  CacheStoreClient client({.target = (*store)->target()});
  absl::StatusOr<v1::StatsResponse> stats = client.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->t2_recovered_blocks(), stats->tiers(1).used_blocks());
  EXPECT_GE(stats->t2_recovered_blocks(), 32u);
  // Prompt 0 went back to T1 before the restart (lost with DRAM); 1 had been demoted in
  // its place and is served from disk now.
  t2.Fetch(client, 1, v1::TIER_LOCAL_SSD);
}

// The default: a block read from T2 stays there (it is served in place until its 8th read),
// so reading it again writes nothing to the SSD, and a restart still finds it on disk.
TEST(StoreProcessTest, T2HitsAreServedInPlaceAndWriteNothing) {
  const std::string dir = ::testing::TempDir() + "/kvtier_process_t2_in_place";
  std::filesystem::remove_all(dir);
  const std::vector<std::string> flags = T2Prompts::Flags(dir);
  const T2Prompts t2(200);
  // Stats once no T2 write is queued.
  auto settled_stats = [](CacheStoreClient& client) {
    return StatsOnce(client,
                     [](const v1::StatsResponse& s) { return s.t2_write_queue_bytes() == 0; });
  };
  {
    auto store = StoreProcess::Start(flags);
    ASSERT_TRUE(store.ok()) << store.status();
    CacheStoreClient client({.target = (*store)->target()});
    ASSERT_NO_FATAL_FAILURE(t2.PutAll(client));
    t2.Fetch(client, 0, v1::TIER_LOCAL_SSD);
    absl::StatusOr<v1::StatsResponse> first = settled_stats(client);
    ASSERT_TRUE(first.ok()) << first.status();
    t2.Fetch(client, 0, v1::TIER_LOCAL_SSD);  // still in T2: the first read did not promote it
    absl::StatusOr<v1::StatsResponse> second = settled_stats(client);
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(second->promoted_blocks(), 0u);
    EXPECT_EQ(second->tiers(1).hit_blocks(), 64u);
    // The second read found its T1 slots free (the first read's, given back): no eviction,
    // no write.
    EXPECT_EQ(second->demoted_blocks(), first->demoted_blocks());
    absl::StatusOr<std::string> metrics = HttpGet((*store)->metrics_port(), "/metrics");
    ASSERT_TRUE(metrics.ok());
    EXPECT_THAT(*metrics, ::testing::HasSubstr("kvtier_promotions_total 0"));
    EXPECT_THAT(*metrics, ::testing::HasSubstr("kvtier_tier_hit_blocks_total{tier=\"t2\"} 64"));
    (*store)->Signal(SIGTERM);
    ASSERT_EQ((*store)->Wait(absl::Seconds(30)), 0);
  }
  auto store = StoreProcess::Start(flags);
  ASSERT_TRUE(store.ok()) << store.status();
  CacheStoreClient client({.target = (*store)->target()});
  t2.Fetch(client, 0, v1::TIER_LOCAL_SSD);  // never left the disk
}

}  // namespace
}  // namespace kvtier
