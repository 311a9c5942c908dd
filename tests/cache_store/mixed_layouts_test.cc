// Many models in one store: layouts of very different block sizes (a 1B-shaped fp8 one
// with its scales in the payload, Llama-3-8B, a 70B-shaped one whose 5 MiB blocks no fixed
// 2 MiB slot held, DeepSeek-V3's MLA) share T1 (and T2) under eviction pressure. Every byte
// read back is checked, and the share of T1 that holds payload is measured.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "cache_store/block_store.h"
#include "tests/cache_store/test_blocks.h"

namespace kvtier {
namespace {

using ::kvtier::testing::KeysOf;
using ::kvtier::testing::PayloadFor;
using ::kvtier::testing::PutBlocks;
using ::kvtier::testing::Tokens;

// The models' shapes with `tokens` per block (16 is the engines' usual; the pressure test
// uses 4, so that a small store holds enough blocks of each to be a cache).
std::vector<KvLayout> Layouts(uint32_t tokens) {
  return {
      KvLayout{.model_id = "llama-3.2-1b",
               .num_layers = 16,
               .num_kv_heads = 8,
               .head_dim = 64,
               .dtype = DType::kFp8E4M3,
               .tokens_per_block = tokens},  // 16: 263,168 bytes (elements, per-head scales)
      Llama3_8BLayout(DType::kBf16, tokens),  // 16: 2 MiB
      KvLayout{.model_id = "llama-3-70b",
               .num_layers = 80,
               .num_kv_heads = 8,
               .head_dim = 128,
               .dtype = DType::kBf16,
               .tokens_per_block = tokens},  // 16: 5 MiB
      DeepSeekV3MlaLayout(DType::kBf16, tokens),  // 16: 1,124,352 bytes
  };
}

class MixedLayoutsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    BlockStoreOptions o;
    // 128 MiB in 16 slabs of 8 MiB (blocks up to 6 MiB: a 70B block of 16 tokens fits).
    o.t1 = {.capacity_bytes = uint64_t{128} << 20,
            .max_block_bytes = uint64_t{6} << 20,
            .lock_mode = MemoryLockMode::kNone};
    if (GetParam()) {
      dir_ = ::testing::TempDir() + "/kvtier_mixed_t2";
      std::filesystem::remove_all(dir_);
      o.t2 = {.directory = dir_, .capacity_bytes = uint64_t{256} << 20};
      o.t2_admit_min_score = 0;
      o.t2_admit_min_return = 0;
    }
    absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Create(o);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // Reads the cached prefix of the prompt and checks every byte; the blocks it matched.
  uint32_t ReadBack(const KvLayout& layout, const std::vector<uint32_t>& tokens) {
    absl::StatusOr<LookupResult> found =
        store_->Lookup({.tenant = "t", .layout = &layout, .tokens = tokens}, {});
    EXPECT_TRUE(found.ok()) << found.status();
    if (!found.ok() || found->matched_blocks() == 0) return 0;
    {
      absl::StatusOr<std::unique_ptr<BlockReadHandle>> read =
          store_->ReadLease("t", found->lease_id);
      EXPECT_TRUE(read.ok()) << read.status();
      if (!read.ok()) return 0;
      const std::vector<BlockKey> keys = KeysOf("t", layout, tokens);
      for (size_t i = 0; i < (*read)->blocks().size(); ++i) {
        const BlockView& v = (*read)->blocks()[i];
        EXPECT_EQ(v.key, keys[i]);
        EXPECT_EQ(v.size, layout.BlockBytes());
        std::vector<uint8_t> got(v.size);
        EXPECT_TRUE((*read)->CopyOut(i, 0, v.size, got.data()).ok());
        EXPECT_EQ(got, PayloadFor(v.key, v.size)) << layout.DebugString() << " block " << i;
      }
    }
    EXPECT_TRUE(store_->Release("t", found->lease_id).ok());
    return found->matched_blocks();
  }

  std::string dir_;
  std::unique_ptr<BlockStore> store_;
};

TEST_P(MixedLayoutsTest, ServesEveryLayoutByteForByteUnderEvictionPressure) {
  const std::vector<KvLayout> layouts = Layouts(4);
  std::mt19937_64 rng(11);
  // Prompts of 4 blocks; each layout gets a pool of prompts that together far exceed T1,
  // revisited with a skew so that some of them hit.
  constexpr uint32_t kBlocks = 4;
  constexpr int kPromptsPerLayout = 150;
  std::map<int, uint64_t> hits;
  double fill_sum = 0, fill_min = 1;
  int fill_samples = 0;
  uint64_t put_bytes = 0;
  const int steps = 1500;
  for (int step = 0; step < steps; ++step) {
    const int l = static_cast<int>(rng() % layouts.size());
    const KvLayout& layout = layouts[l];
    // Zipf-ish: low prompt numbers come back more often.
    const uint32_t p = static_cast<uint32_t>(std::min<uint64_t>(
        kPromptsPerLayout - 1, static_cast<uint64_t>(std::exponential_distribution<>(0.04)(rng))));
    const std::vector<uint32_t> tokens = Tokens(kBlocks * layout.tokens_per_block, l * 1000 + p);
    const uint32_t matched = ReadBack(layout, tokens);
    hits[l] += matched;
    if (matched < kBlocks) {
      absl::StatusOr<PutResult> put =
          PutBlocks(*store_, "t", layout, tokens, matched, kBlocks - matched);
      ASSERT_TRUE(put.ok()) << layout.DebugString() << ": " << put.status();
      put_bytes += uint64_t{kBlocks - matched} * layout.BlockBytes();
    }
    if (put_bytes > (uint64_t{256} << 20)) {  // T1 has turned over: steady state
      const BlockStoreStats s = store_->Stats();
      const double fill = double(s.t1_used_bytes) / double(s.t1_capacity_bytes);
      fill_sum += fill;
      fill_min = std::min(fill_min, fill);
      ++fill_samples;
    }
  }
  const BlockStoreStats s = store_->Stats();
  ASSERT_GT(fill_samples, 100);
  const double fill_mean = fill_sum / fill_samples;
  std::printf("T1 payload share at steady state: mean %.3f, min %.3f over %d samples; "
              "%llu slab moves, %llu blocks evicted%s\n",
              fill_mean, fill_min, fill_samples, static_cast<unsigned long long>(s.t1_slab_moves),
              static_cast<unsigned long long>(s.evicted_blocks + s.demoted_blocks),
              GetParam() ? " or demoted" : "");
  for (const LayoutUsage& u : s.layouts) {
    std::printf("  layout %016llx: %llu-byte blocks, T1 %llu blocks, T2 %llu blocks\n",
                static_cast<unsigned long long>(u.layout_fingerprint),
                static_cast<unsigned long long>(u.block_bytes),
                static_cast<unsigned long long>(u.t1_blocks),
                static_cast<unsigned long long>(u.t2_blocks));
  }
  EXPECT_GE(fill_mean, 0.85);
  EXPECT_GT(s.evicted_blocks + s.demoted_blocks, 100u);  // under pressure
  for (int l = 0; l < static_cast<int>(layouts.size()); ++l) {
    EXPECT_GT(hits[l], 0u) << layouts[l].DebugString() << " never hit";
  }
  // Every layout holds blocks at the end, and the accounts per layout add up.
  uint64_t t1_bytes = 0, t1_blocks = 0;
  for (const LayoutUsage& u : s.layouts) {
    t1_bytes += u.t1_bytes;
    t1_blocks += u.t1_blocks;
    EXPECT_EQ(u.t1_bytes, u.t1_blocks * u.block_bytes);
    EXPECT_EQ(u.t2_bytes, u.t2_blocks * u.block_bytes);
  }
  EXPECT_EQ(t1_bytes, s.t1_used_bytes);
  EXPECT_EQ(t1_blocks, s.t1_used_blocks);
  EXPECT_LE(s.t1_used_bytes, s.t1_allocated_bytes);
  EXPECT_LE(s.t1_allocated_bytes, s.t1_capacity_bytes);
  EXPECT_EQ(s.checksum_failures, 0u);
}

TEST_P(MixedLayoutsTest, ABlockOfA70BModelIsStoredAndServed) {
  const KvLayout l70b = Layouts(16)[2];
  ASSERT_EQ(l70b.BlockBytes(), uint64_t{5} << 20);
  const std::vector<uint32_t> tokens = Tokens(3 * 16, 70);
  absl::StatusOr<PutResult> put = PutBlocks(*store_, "t", l70b, tokens, 0, 3);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored_blocks, 3u);
  EXPECT_EQ(ReadBack(l70b, tokens), 3u);
  // Larger than the store takes: refused by name, nothing stored.
  KvLayout huge = l70b;
  huge.tokens_per_block = 32;  // 10 MiB blocks
  const std::vector<uint32_t> more = Tokens(32, 71);
  absl::StatusOr<PutResult> refused = PutBlocks(*store_, "t", huge, more, 0, 1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("max_block_bytes"), std::string_view::npos);
}

INSTANTIATE_TEST_SUITE_P(Tiers, MixedLayoutsTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "T1AndT2" : "T1Only"; });

}  // namespace
}  // namespace kvtier
