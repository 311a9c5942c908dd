// T2 admission: which T1 victims the SSD tier takes (score, reuse, predict), and their names.
#include <gtest/gtest.h>

#include "cache_store/block_store.h"
#include "tests/cache_store/t2_test_fixture.h"
#include "tests/cache_store/test_blocks.h"

namespace kvtier {
namespace {

using testing::FreshDir;
using testing::kTenant;
using testing::PutBlocks;
using testing::T2Options;
using testing::T2Test;
using testing::Tokens;

TEST_F(T2Test, TheAdmissionFilterKeepsUnlikelyBlocksOffTheSsd) {
  BlockStoreOptions o = T2Options(FreshDir("filter"));
  o.t2_admission = BlockStoreOptions::T2Admission::kScore;
  o.eviction_policy = "adaptive";
  o.t2_admit_min_score = 1.0;  // no estimate reaches certainty: nothing is admitted
  Open(o);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.demotion_rejected_blocks, 4u);
  EXPECT_EQ(s.demoted_blocks, 0u);
  EXPECT_EQ(s.t2_bytes_written, 0u);
  EXPECT_EQ(s.evicted_blocks, 4u);
}

TEST_F(T2Test, ReuseAdmissionWritesOnlyBlocksThatShowedReuse) {
  BlockStoreOptions o = T2Options(FreshDir("reuse"));
  o.t2_admission = BlockStoreOptions::T2Admission::kReuse;
  o.t2_admit_min_score = 1.0;  // only shown reuse admits (no estimate reaches certainty)
  o.eviction_policy = "adaptive";
  Open(o);
  const std::vector<uint32_t> c = Tokens(4 * 4, 3);
  const std::vector<uint32_t> d = Tokens(4 * 4, 4);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());                        // A is hit
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // A goes to T2
  BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.demoted_blocks, 4u);
  EXPECT_EQ(s.demotion_rejected_blocks, 0u);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, c, 0, 4).ok());  // B, never hit, is dropped
  store_->FlushT2Writes();
  s = store_->Stats();
  EXPECT_EQ(s.demoted_blocks, 4u);
  EXPECT_EQ(s.demotion_rejected_blocks, 4u);
  EXPECT_EQ(s.t2_bytes_written, 4 * layout_.BlockBytes());
  EXPECT_EQ(Lookup(b_, false).matched_blocks(), 0u);
  // B returns (a miss, Put again): it has shown reuse now, and its next eviction writes it.
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // C dropped
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, d, 0, 4).ok());  // B to T2
  s = store_->Stats();
  EXPECT_EQ(s.demoted_blocks, 8u);
  EXPECT_EQ(s.demotion_rejected_blocks, 8u);
  LookupResult found = Lookup(b_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
  EXPECT_TRUE(ReadAndCheck(found).ok());
}

// Predicted admission with a threshold a class crosses after a few unreturned victims.
BlockStoreOptions PredictOptions(const std::string& dir) {
  BlockStoreOptions o = T2Options(dir);
  o.t2_admission = BlockStoreOptions::T2Admission::kPredict;
  o.t2_admit_min_return = 0.2;
  return o;
}

TEST_F(T2Test, PredictedAdmissionStopsWritingBlocksOfAClassThatNeverComesBack) {
  Open(PredictOptions(FreshDir("predict")));
  // One-off 4-block prompts: each Put pushes the previous prompt out of T1 (4 slots). The
  // first victims are written (no history yet: every class starts at 1/2); once their
  // trials fall out of the horizon (2 T1 turnovers) unreturned, their classes are refused.
  uint64_t written_early = 0;
  for (uint32_t i = 0; i < 40; ++i) {
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, Tokens(4 * 4, 100 + i), 0, 4).ok());
    store_->FlushT2Writes();  // the write queue holds 4 blocks: a full one would drop some
    if (i == 3) written_early = store_->Stats().demoted_blocks;
  }
  BlockStoreStats s = store_->Stats();
  EXPECT_GE(written_early, 8u);
  EXPECT_LE(s.demoted_blocks, written_early + 12);  // a few more while it learns, then none
  EXPECT_GE(s.demotion_rejected_blocks, 100u);
  // A prompt that has shown reuse (a hit in T1) is written whatever its class predicts.
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());
  store_->FlushT2Writes();  // the write queue holds 4 blocks: a full one would drop A
  const uint64_t before = store_->Stats().demoted_blocks;
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // A to T2
  store_->FlushT2Writes();
  EXPECT_EQ(store_->Stats().demoted_blocks, before + 4);
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
  EXPECT_TRUE(ReadAndCheck(found).ok());
}

TEST_F(T2Test, PredictedAdmissionKeepsWritingAClassWhoseBlocksComeBack) {
  Open(PredictOptions(FreshDir("predict_back")));
  // Every prompt comes back from T2 right after the next one pushed it out of T1: its
  // class keeps returning, and none of its blocks is refused.
  for (uint32_t i = 0; i < 40; ++i) {
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, Tokens(4 * 4, 100 + i), 0, 4).ok());
    store_->FlushT2Writes();  // the write queue holds 4 blocks: a full one would drop some
    if (i >= 1) {
      LookupResult found = Lookup(Tokens(4 * 4, 100 + i - 1));
      ASSERT_EQ(found.matched_blocks(), 4u) << "prompt " << i - 1;
      for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
      EXPECT_TRUE(ReadAndCheck(found).ok());
    }
  }
  EXPECT_EQ(store_->Stats().demotion_rejected_blocks, 0u);
}

TEST(T2AdmissionTest, NamesParseAndAnUnknownOneIsRefusedByName) {
  for (auto a : {BlockStoreOptions::T2Admission::kReuse, BlockStoreOptions::T2Admission::kScore,
                 BlockStoreOptions::T2Admission::kAll, BlockStoreOptions::T2Admission::kPredict}) {
    auto parsed = ParseT2Admission(T2AdmissionName(a));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, a);
  }
  auto bad = ParseT2Admission("sometimes");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("sometimes"), std::string_view::npos);
}

}  // namespace
}  // namespace kvtier
