// BlockStore with the SSD tier: when a block read from T2 moves to T1
// (BlockStoreOptions::t2_promote_after_reads). Reads before the Nth since the block entered
// T2 serve it from T2 in place: the bytes are right, the block stays in T2, and it is not
// written to T2 again when T1 would have evicted it.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "cache_store/block_store.h"
#include "tests/cache_store/t2_test_fixture.h"
#include "tests/cache_store/test_blocks.h"

namespace kvtier {
namespace {

using testing::BlockIsIntact;
using testing::EveryBlockLoadedAndIntact;
using testing::CorruptEveryT2Payload;
using testing::FreshDir;
using testing::kTenant;
using testing::PutBlocks;
using testing::StreamingRead;
using testing::T2Options;
using testing::T2Test;
using testing::Tokens;

BlockStoreOptions PromoteAfter(const std::string& dir, uint32_t reads) {
  BlockStoreOptions o = T2Options(dir);
  o.t2_promote_after_reads = reads;
  return o;
}

TEST(T2PromotionTest, TheDefaultPromotesOnTheEighthRead) {
  EXPECT_EQ(BlockStoreOptions{}.t2_promote_after_reads, 8u);
}

TEST_F(T2Test, ReadsBeforeTheNthServeTheBlockFromT2InPlace) {
  Open(PromoteAfter(FreshDir("promote3"), 3));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // A to T2
  store_->FlushT2Writes();
  for (int read = 1; read <= 3; ++read) {
    LookupResult found = Lookup(a_);
    ASSERT_EQ(found.matched_blocks(), 4u) << "read " << read;
    for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd) << "read " << read;
    ASSERT_TRUE(ReadAndCheck(found).ok()) << "read " << read;
    store_->FlushT2Writes();
    const BlockStoreStats s = store_->Stats();
    EXPECT_EQ(s.promoted_blocks, read < 3 ? 0u : 4u) << "read " << read;
    EXPECT_EQ(s.t2_reads, 4u * read);
  }
  // Promoted by the third read: T1 serves it now.
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kHostDram);
  EXPECT_TRUE(ReadAndCheck(found).ok());
  EXPECT_EQ(store_->Stats().t2_reads, 12u);
}

// The write a promotion costs: a block promoted into T1 is written to T2 a second time when
// T1 evicts it; one served in place never left T2.
TEST_F(T2Test, ServingInPlaceSavesTheRewriteThatAPromotionCosts) {
  std::vector<uint32_t> c = Tokens(4 * 4, 3);
  std::vector<uint32_t> d = Tokens(4 * 4, 4);
  uint64_t demoted[2];
  for (uint32_t after : {1u, 0u}) {
    Open(PromoteAfter(FreshDir("rewrite" + std::to_string(after)), after));
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // A to T2
    store_->FlushT2Writes();  // the write queue holds 4 blocks: a full one would drop some
    ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());
    store_->FlushT2Writes();
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, c, 0, 4).ok());
    store_->FlushT2Writes();
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, d, 0, 4).ok());
    store_->FlushT2Writes();
    const BlockStoreStats s = store_->Stats();
    EXPECT_EQ(s.t2_write_queue_drops, 0u);
    EXPECT_EQ(s.promoted_blocks, after == 1 ? 4u : 0u);
    demoted[after] = s.demoted_blocks;
    // Every prompt is still served, byte for byte.
    for (std::vector<uint32_t>* p : {&a_, &b_, &c, &d}) {
      LookupResult found = Lookup(*p);
      ASSERT_EQ(found.matched_blocks(), 4u) << "promote after " << after;
      EXPECT_TRUE(ReadAndCheck(found).ok());
      store_->FlushT2Writes();
    }
  }
  // Promoting: A to T2, B out for A's promotion, A out again for C, C out for D: 16.
  // In place: A to T2, B out for the read's T1 slots (freed after it, so C takes them
  // without evicting), C out for D: 12; A's four blocks were written once, not twice.
  EXPECT_EQ(demoted[1], 16u);
  EXPECT_EQ(demoted[0], 12u);
}

TEST_F(T2Test, NeverPromotingServesARecoveredBlockFromDiskOnEveryRead) {
  const std::string dir = FreshDir("never");
  Open(PromoteAfter(dir, 0));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  Open(PromoteAfter(dir, 0));  // restarted: A is recovered without its layer checksums
  ASSERT_EQ(store_->Stats().t2_recovered_blocks, 4u);
  for (int read = 1; read <= 10; ++read) {
    LookupResult found = Lookup(a_);
    ASSERT_EQ(found.matched_blocks(), 4u);
    for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
    ASSERT_TRUE(ReadAndCheck(found).ok()) << "read " << read;
  }
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.promoted_blocks, 0u);
  EXPECT_EQ(s.t2_reads, 40u);
  EXPECT_EQ(s.demoted_blocks, 0u);  // nothing is written: A never left T2
  EXPECT_EQ(s.t1_used_blocks, 0u);  // each read's T1 slots went back when it ended
}

// A recovered block has no layer checksums until a read verifies it; a read that serves it in
// place keeps them, so that the next streaming read can announce them and open before the
// disk has read anything (as it does for a block just demoted).
TEST_F(T2Test, AStreamingReadOpensAtOnceOnceAnInPlaceReadHasVerifiedARecoveredBlock) {
  const std::string dir = FreshDir("stream_recovered");
  BlockStoreOptions o = PromoteAfter(dir, 0);
  o.t2.fault_injector = disk_.Injector();
  Open(o);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  Open(o);
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());  // learns A's layer checksums
  disk_.StallReads(true);
  const LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  StreamingRead stream(*store_, found.lease_id);
  EXPECT_NE(stream.handle(), nullptr) << "the read waited for the disk: layer checksums unknown";
  disk_.StallReads(false);
  stream.AwaitSettled(4, absl::Seconds(10));  // a read opened late misses the settlings
  // Opened late (the failure above) or not: every byte it serves is right.
  ASSERT_TRUE(stream.AwaitOpen(absl::Seconds(10)));
  std::shared_ptr<BlockReadHandle> read = stream.handle();
  ASSERT_TRUE(EveryBlockLoadedAndIntact(*read, 4));
  read.reset();
  stream.Reset();
  ASSERT_TRUE(store_->Release(kTenant, found.lease_id).ok());
  EXPECT_EQ(store_->Stats().promoted_blocks, 0u);
}

TEST_F(T2Test, ABlockCorruptedOnDiskIsDroppedWhenServedInPlace) {
  const std::string dir = FreshDir("corrupt_in_place");
  Open(PromoteAfter(dir, 0));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  store_.reset();
  CorruptEveryT2Payload(dir);
  Open(PromoteAfter(dir, 0));
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  const absl::Status s = ReadAndCheck(found);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  const BlockStoreStats stats = store_->Stats();
  EXPECT_EQ(stats.checksum_failures_t2, 4u);
  EXPECT_EQ(stats.t2_used_blocks, 0u);
  EXPECT_EQ(stats.t1_used_blocks, 0u);
  EXPECT_EQ(Lookup(a_, false).matched_blocks(), 0u);
}

TEST(T2PromotionTest, ALimitAbove255IsRefusedByName) {
  BlockStoreOptions o = PromoteAfter(FreshDir("limit"), 256);
  absl::StatusOr<std::unique_ptr<BlockStore>> s = BlockStore::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("t2_promote_after_reads"), std::string::npos)
      << s.status();
  o.t2_promote_after_reads = 255;
  EXPECT_TRUE(BlockStore::Create(o).ok());
}

}  // namespace
}  // namespace kvtier
