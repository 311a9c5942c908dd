// BlockStore with the SSD tier: demotion, promotion, warm restart, corruption, a full disk
// (T2 admission: t2_admission_test.cc).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "cache_store/block_store.h"
#include "tests/cache_store/disk_faults.h"
#include "tests/cache_store/file_size_limit.h"
#include "tests/cache_store/t2_test_fixture.h"
#include "tests/cache_store/test_blocks.h"

namespace kvtier {
namespace {

using testing::KeysOf;
using testing::PayloadFor;
using testing::PutBlocks;
using testing::SmallLayout;
using testing::SmallStoreOptions;
using testing::Tokens;

using testing::BlockIsIntact;
using testing::EveryBlockLoadedAndIntact;
using testing::CorruptEveryT2Payload;
using testing::FileSizeLimit;
using testing::FreshDir;
using testing::kT1Slots;
using testing::kT2Slots;
using testing::kTenant;
using testing::StreamingRead;
using testing::T2Options;
using testing::T2Test;
namespace fs = std::filesystem;

TEST_F(T2Test, EvictedBlocksAreDemotedServedFromT2AndPromotedBack) {
  Open(T2Options(FreshDir("roundtrip")));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // pushes A to T2
  BlockStoreStats s = store_->Stats();
  EXPECT_TRUE(s.t2_enabled);
  EXPECT_EQ(s.demoted_blocks, 4u);
  EXPECT_EQ(s.t2_used_blocks, 4u);
  EXPECT_EQ(s.t1_used_blocks, 4u);

  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
  ASSERT_TRUE(ReadAndCheck(found).ok());
  s = store_->Stats();
  EXPECT_EQ(s.promoted_blocks, 4u);
  EXPECT_EQ(s.lookup_hit_blocks_t2, 4u);
  EXPECT_EQ(s.t2_bytes_read, 4 * layout_.BlockBytes());

  // A lives in T1 now and B was demoted to make room; both are still whole.
  found = Lookup(a_);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kHostDram);
  ASSERT_TRUE(ReadAndCheck(found).ok());
  found = Lookup(b_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
  ASSERT_TRUE(ReadAndCheck(found).ok());
  EXPECT_EQ(store_->Stats().checksum_failures, 0u);
}

TEST_F(T2Test, ExplicitReadOfAT2BlockListedTwiceIsServedTwice) {
  Open(T2Options(FreshDir("twice")));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  const std::vector<BlockKey> keys = KeysOf(kTenant, layout_, a_);
  const std::vector<BlockKey> twice = {keys[0], keys[0], keys[1]};
  auto read = store_->ReadBlocks(kTenant, twice);
  ASSERT_TRUE(read.ok()) << read.status();
  for (const BlockView& v : (*read)->blocks()) {
    const std::vector<uint8_t> want = PayloadFor(v.key, v.size);
    EXPECT_EQ(std::memcmp(v.data, want.data(), v.size), 0);
  }
}

TEST_F(T2Test, WarmRestartServesTheBlocksOnDisk) {
  const std::string dir = FreshDir("restart");
  Open(T2Options(dir));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  Open(T2Options(dir));  // a new process on the same directory: T1 starts empty
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.t2_recovered_blocks, 4u);
  EXPECT_EQ(s.t2_used_blocks, 4u);
  EXPECT_EQ(s.t1_used_blocks, 0u);
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  ASSERT_TRUE(ReadAndCheck(found).ok());
  EXPECT_EQ(Lookup(b_).matched_blocks(), 0u);  // B was only in DRAM
  // Another tenant cannot see the recovered blocks.
  auto other = store_->Lookup({.tenant = "other", .layout = &layout_, .tokens = a_}, {});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->matched_blocks(), 0u);
}

TEST_F(T2Test, ABlockCorruptedOnDiskIsDroppedAndCountedNeverServed) {
  const std::string dir = FreshDir("corrupt");
  Open(T2Options(dir));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  store_.reset();
  CorruptEveryT2Payload(dir);
  Open(T2Options(dir));
  EXPECT_EQ(store_->Stats().t2_recovered_blocks, 4u);  // headers are intact
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  absl::Status s = ReadAndCheck(found);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  const BlockStoreStats stats = store_->Stats();
  EXPECT_EQ(stats.checksum_failures_t2, 4u);
  EXPECT_EQ(stats.t2_used_blocks, 0u);
  EXPECT_EQ(Lookup(a_, false).matched_blocks(), 0u);
  // The store keeps working: the prompt can be stored again and read back.
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  EXPECT_TRUE(ReadAndCheck(found).ok());
}

TEST_F(T2Test, ADeletedT2BlockDoesNotComeBackAfterRestart) {
  const std::string dir = FreshDir("delete");
  Open(T2Options(dir));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  const std::vector<BlockKey> keys = KeysOf(kTenant, layout_, a_);
  auto deleted = store_->Delete(kTenant, keys);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 4u);
  Open(T2Options(dir));
  EXPECT_EQ(store_->Stats().t2_recovered_blocks, 0u);
  EXPECT_EQ(Lookup(a_).matched_blocks(), 0u);
}

class PromotedCopyTest : public T2Test, public ::testing::WithParamInterface<bool> {};

TEST_P(PromotedCopyTest, ADeletedPromotedBlockLeavesNoCopyThatARestartWouldRevive) {
  const std::string dir = FreshDir(GetParam() ? "promoted_copy" : "promoted");
  BlockStoreOptions o = T2Options(dir);
  o.t2_keep_promoted_copy = GetParam();
  Open(o);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());  // A back to T1, B down to T2
  const std::vector<BlockKey> keys = KeysOf(kTenant, layout_, a_);
  ASSERT_TRUE(store_->Delete(kTenant, keys).ok());  // deleted while in T1
  Open(o);
  EXPECT_EQ(Lookup(a_).matched_blocks(), 0u);
  EXPECT_EQ(Lookup(b_).matched_blocks(), 4u);
}

INSTANTIATE_TEST_SUITE_P(KeepCopy, PromotedCopyTest, ::testing::Bool());

// A promotion writes nothing to the slot it leaves: the record stays valid on the disk (a
// stale record), so a restart brings the block back from it, verified like any other.
TEST_F(T2Test, APromotionLeavesItsRecordForARestartWithoutWritingTheDisk) {
  const std::string dir = FreshDir("stale_restart");
  Open(T2Options(dir));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // A to T2
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());  // A promoted, B demoted
  store_->FlushT2Writes();
  BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.promoted_blocks, 4u);
  EXPECT_EQ(s.t2_used_blocks, 4u);
  // The stale slots are free space, not usage.
  EXPECT_EQ(s.t2_allocated_bytes, 4 * SsdTier::SlotBytesFor(layout_.BlockBytes()));
  Open(T2Options(dir));  // T1 (where A was) is gone; A's records are not
  s = store_->Stats();
  EXPECT_EQ(s.t2_recovered_blocks, 8u);
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  ASSERT_TRUE(ReadAndCheck(found).ok());
  EXPECT_EQ(store_->Stats().checksum_failures, 0u);
}

// The slots promotions left are reused before any T2 block is evicted.
TEST_F(T2Test, SlotsPromotionsLeftAreReusedBeforeAnyT2BlockIsEvicted) {
  const std::string dir = FreshDir("stale_reuse");
  Open(T2Options(dir));
  const uint64_t capacity = store_->Stats().t2_capacity_blocks;
  ASSERT_EQ(capacity % 4, 0u);
  ASSERT_GE(capacity, 8u);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // T2: A
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());                        // T2: B, stale A
  store_->FlushT2Writes();
  // Each new prompt demotes the 4 blocks T1 held: the free slots first, then the last
  // prompt's demotion needs the 4 stale ones.
  std::vector<std::vector<uint32_t>> prompts = {a_, b_};
  const uint64_t puts = (capacity - 8) / 4 + 1;
  for (uint64_t i = 0; i < puts; ++i) {
    prompts.push_back(Tokens(4 * 4, static_cast<uint32_t>(10 + i)));
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, prompts.back(), 0, 4).ok());
    store_->FlushT2Writes();
  }
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.t2_evicted_blocks, 0u);
  EXPECT_EQ(s.t2_write_queue_drops, 0u);
  EXPECT_EQ(s.t2_used_blocks, capacity);
  EXPECT_EQ(s.demoted_blocks, 8 + 4 * puts);
  for (const std::vector<uint32_t>& prompt : prompts) {
    EXPECT_EQ(Lookup(prompt, /*lease=*/false).matched_blocks(), 4u);
  }
  // The prompt demoted last went into the stale slots: whole.
  LookupResult found = Lookup(prompts[prompts.size() - 2]);
  ASSERT_EQ(found.matched_blocks(), 4u);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
  ASSERT_TRUE(ReadAndCheck(found).ok());
  EXPECT_EQ(store_->Stats().checksum_failures, 0u);
}

// The blocks one Put pushes out of T1 land in adjacent T2 slots: one disk write for them.
TEST_F(T2Test, BlocksDemotedTogetherIntoAdjacentSlotsAreOneDiskWrite) {
  Open(T2Options(FreshDir("run")));
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // A's 4 blocks to T2
  store_->FlushT2Writes();
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.demoted_blocks, 4u);
  EXPECT_EQ(s.t2_writes, 1u);
  EXPECT_EQ(s.t2_bytes_written, 4 * layout_.BlockBytes());
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  ASSERT_TRUE(ReadAndCheck(found).ok());
}

// A block with two valid records (a stale one a promotion left, and the one its next
// demotion wrote) comes back once after a restart; a Delete then reaches both records, so
// the next restart brings back neither.
TEST_F(T2Test, ADeleteReachesEveryRecordOfTheBlockStaleOnesIncluded) {
  const std::string dir = FreshDir("stale_delete");
  Open(T2Options(dir));
  const std::vector<uint32_t> c = Tokens(4 * 4, 3);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());  // A's first records stale
  store_->FlushT2Writes();
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, c, 0, 4).ok());  // A written again
  store_->FlushT2Writes();
  Open(T2Options(dir));
  EXPECT_EQ(store_->Stats().t2_recovered_blocks, 8u);  // A once, B
  ASSERT_EQ(Lookup(a_, /*lease=*/false).matched_blocks(), 4u);
  ASSERT_TRUE(store_->Delete(kTenant, KeysOf(kTenant, layout_, a_)).ok());
  Open(T2Options(dir));
  EXPECT_EQ(Lookup(a_, /*lease=*/false).matched_blocks(), 0u);
  EXPECT_EQ(Lookup(b_, /*lease=*/false).matched_blocks(), 4u);
  EXPECT_EQ(store_->Stats().t2_recovered_blocks, 4u);
}

TEST_F(T2Test, WhenTheDiskFailsEvictedBlocksAreDroppedAndT1KeepsServing) {
  Open(T2Options(FreshDir("diskfull")));
  {
    FileSizeLimit limit(4096);  // nothing past the superblock can be written
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
    ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
    store_->FlushT2Writes();  // the writes fail on the writer threads
  }
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.t2_write_errors, 4u);
  EXPECT_EQ(s.t2_bytes_written, 0u);
  EXPECT_EQ(s.t2_used_blocks, 0u);
  EXPECT_EQ(Lookup(a_).matched_blocks(), 0u);
  LookupResult found = Lookup(b_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  EXPECT_TRUE(ReadAndCheck(found).ok());
}

TEST_F(T2Test, APromotedBlockGoesBackToItsT2CopyWithoutWriting) {
  const std::string dir = FreshDir("copy");
  BlockStoreOptions o = T2Options(dir);
  o.t2_keep_promoted_copy = true;
  Open(o);
  const std::vector<uint32_t> c = Tokens(4 * 4, 3);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // A written to T2
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());  // A promoted, keeps its copy; B written
  store_->FlushT2Writes();
  BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.demoted_blocks, 8u);
  EXPECT_EQ(s.t2_copy_blocks, 4u);
  const uint64_t written = s.t2_bytes_written;
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, c, 0, 4).ok());  // A back to its copy
  store_->FlushT2Writes();
  s = store_->Stats();
  EXPECT_EQ(s.clean_demotions, 4u);
  EXPECT_EQ(s.t2_copy_blocks, 0u);
  EXPECT_EQ(s.t2_bytes_written, written);
  EXPECT_EQ(s.t2_used_blocks, 8u);
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
  ASSERT_TRUE(ReadAndCheck(found).ok());  // every byte checked; A promoted again, C written
  EXPECT_EQ(store_->Stats().t2_copy_blocks, 4u);
  // The copies are ordinary T2 records: a restart serves A, B and C from them.
  Open(o);
  EXPECT_EQ(store_->Stats().t2_recovered_blocks, 12u);
  found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  EXPECT_TRUE(ReadAndCheck(found).ok());
  EXPECT_EQ(store_->Stats().checksum_failures, 0u);
}

TEST_F(T2Test, ExclusiveTiersRewriteAPromotedBlock) {
  BlockStoreOptions o = T2Options(FreshDir("exclusive"));
  o.t2_keep_promoted_copy = false;
  Open(o);
  const std::vector<uint32_t> c = Tokens(4 * 4, 3);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  ASSERT_TRUE(ReadAndCheck(Lookup(a_)).ok());
  store_->FlushT2Writes();  // this T2's write queue holds 8 blocks
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, c, 0, 4).ok());
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.clean_demotions, 0u);
  EXPECT_EQ(s.t2_copy_blocks, 0u);
  EXPECT_EQ(s.demoted_blocks, 12u) << "drops " << s.t2_write_queue_drops << " rejected "
                                   << s.demotion_rejected_blocks << " t2 used " << s.t2_used_blocks
                                   << " evicted " << s.evicted_blocks;
}

// T2 I/O runs on the store's threads: a stalled disk stalls no caller.
TEST_F(T2Test, AQueuedDemotionIsServedFromMemoryWhileTheDiskStalls) {
  BlockStoreOptions o = T2Options(FreshDir("stall"));
  o.t2.fault_injector = disk_.Injector();
  Open(o);
  disk_.StallWrites(true);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // returns: A is queued
  ASSERT_TRUE(disk_.AwaitBlocked(1, absl::Seconds(10)));
  EXPECT_GT(store_->Stats().t2_write_queue_bytes, 0u);
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  for (Tier t : found.tiers) EXPECT_EQ(t, Tier::kLocalSsd);
  ASSERT_TRUE(ReadAndCheck(found).ok());  // from the queue, every byte checked
  disk_.StallWrites(false);
  store_->FlushT2Writes();
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.t2_write_queue_bytes, 0u);
  EXPECT_EQ(s.t2_write_errors, 0u);
  EXPECT_EQ(s.checksum_failures, 0u);
  found = Lookup(b_);  // B went to T2 when A came back; all of it on disk now
  ASSERT_EQ(found.matched_blocks(), 4u);
  EXPECT_TRUE(ReadAndCheck(found).ok());
}

TEST_F(T2Test, AFullWriteQueueDropsTheDemotionAndCountsIt) {
  BlockStoreOptions o = T2Options(FreshDir("queuefull"));
  o.t2.fault_injector = disk_.Injector();
  o.t2_write_queue_bytes = 4096;  // one small block
  o.t2_write_threads = 1;
  Open(o);
  disk_.StallWrites(true);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.demoted_blocks, 1u);
  EXPECT_EQ(s.t2_write_queue_drops, 3u);
  disk_.StallWrites(false);
  store_->FlushT2Writes();
  s = store_->Stats();
  EXPECT_EQ(s.t2_used_blocks, 1u);
  EXPECT_EQ(s.t2_write_queue_bytes, 0u);
  // What was kept is whole; what was dropped is a miss, never wrong bytes.
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 1u);
  EXPECT_TRUE(ReadAndCheck(found).ok());
}

TEST_F(T2Test, AReadTheDiskFailsServesNothingAndDropsTheBlocks) {
  BlockStoreOptions o = T2Options(FreshDir("readfail"));
  o.t2.fault_injector = disk_.Injector();
  Open(o);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  store_->FlushT2Writes();
  disk_.FailReads(true);
  LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  auto read = store_->ReadLease(kTenant, found.lease_id);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  ASSERT_TRUE(store_->Release(kTenant, found.lease_id).ok());
  const BlockStoreStats s = store_->Stats();
  EXPECT_EQ(s.t2_read_errors, 4u);
  EXPECT_EQ(s.t2_used_blocks, 4u);  // B, demoted to make room for A's promotion
  EXPECT_EQ(Lookup(a_, false).matched_blocks(), 0u);
  disk_.FailReads(false);  // the store goes on: T1 serves, T2 takes demotions again
  found = Lookup(b_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  EXPECT_TRUE(ReadAndCheck(found).ok());
}

// A streaming read opens before its T2 blocks are read, and each block becomes readable as
// its own read ends: block 0 is served while block 1 is still on a stalled disk.
TEST_F(T2Test, AStreamingReadServesEachBlockAsItsDiskReadEnds) {
  BlockStoreOptions o = T2Options(FreshDir("streaming"));
  o.t2.fault_injector = disk_.Injector();
  o.t2_read_threads = 1;  // reads in block order
  Open(o);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());  // A to T2
  store_->FlushT2Writes();
  disk_.StallReadsAfter(1);
  const LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);

  StreamingRead stream(*store_, found.lease_id);
  std::shared_ptr<BlockReadHandle> read = stream.handle();
  ASSERT_NE(read, nullptr) << "a streaming read opens on the calling thread";
  ASSERT_TRUE(disk_.AwaitBlocked(1, absl::Seconds(10)));  // block 1's read
  // Block 0 loaded and verified; the rest wait.
  for (absl::Time end = absl::Now() + absl::Seconds(10); !read->Loaded(0) && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(read->Loaded(0));
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_FALSE(read->Loaded(i)) << i;
    EXPECT_FALSE(read->Failed(i)) << i;
  }
  EXPECT_TRUE(BlockIsIntact(*read, 0));

  disk_.StallReads(false);
  ASSERT_TRUE(stream.AwaitSettled(4, absl::Seconds(10))) << "settled " << stream.settled();
  ASSERT_TRUE(EveryBlockLoadedAndIntact(*read, 4));
  read.reset();
  stream.Reset();
  ASSERT_TRUE(store_->Release(kTenant, found.lease_id).ok());
  // The promotions completed after the last read: A is in T1 now.
  for (absl::Time end = absl::Now() + absl::Seconds(10);
       store_->Stats().promoted_blocks < 4 && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(store_->Stats().promoted_blocks, 4u);
  for (Tier t : Lookup(a_, false).tiers) EXPECT_EQ(t, Tier::kHostDram);
  EXPECT_EQ(store_->Stats().checksum_failures, 0u);
}

// A block whose read fails mid-stream is Failed on the handle and dropped from the store;
// the blocks read before it stay whole and readable.
TEST_F(T2Test, AStreamingReadMarksABlockTheDiskFailsAndKeepsTheOthers) {
  BlockStoreOptions o = T2Options(FreshDir("streamfail"));
  o.t2.fault_injector = disk_.Injector();
  o.t2_read_threads = 1;
  Open(o);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  store_->FlushT2Writes();
  disk_.FailReadsAfter(2);
  const LookupResult found = Lookup(a_);
  ASSERT_EQ(found.matched_blocks(), 4u);
  StreamingRead stream(*store_, found.lease_id);
  std::shared_ptr<BlockReadHandle> read = stream.handle();
  ASSERT_NE(read, nullptr);
  for (absl::Time end = absl::Now() + absl::Seconds(10);
       store_->Stats().t2_read_errors < 2 && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  // The store counts a failed read before it marks the block Failed on the handle.
  ASSERT_TRUE(stream.AwaitSettled(4, absl::Seconds(10))) << "settled " << stream.settled();
  EXPECT_TRUE(read->Loaded(0));
  EXPECT_TRUE(read->Loaded(1));
  EXPECT_TRUE(read->Failed(2));
  EXPECT_TRUE(read->Failed(3));
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(BlockIsIntact(*read, i));
  disk_.FailReads(false);
  read.reset();
  stream.Reset();
  ASSERT_TRUE(store_->Release(kTenant, found.lease_id).ok());
  EXPECT_EQ(store_->Stats().t2_read_errors, 2u);
  EXPECT_EQ(Lookup(a_, false).matched_blocks(), 2u);  // the failed blocks are misses now
  const LookupResult again = Lookup(a_);
  EXPECT_TRUE(ReadAndCheck(again).ok());
}

TEST_F(T2Test, ABlockDeletedWhileItsWriteIsQueuedDoesNotComeBackAfterRestart) {
  const std::string dir = FreshDir("deletequeued");
  BlockStoreOptions o = T2Options(dir);
  o.t2.fault_injector = disk_.Injector();
  Open(o);
  disk_.StallWrites(true);
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, a_, 0, 4).ok());
  ASSERT_TRUE(PutBlocks(*store_, kTenant, layout_, b_, 0, 4).ok());
  ASSERT_TRUE(disk_.AwaitBlocked(1, absl::Seconds(10)));
  auto deleted = store_->Delete(kTenant, KeysOf(kTenant, layout_, a_));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 4u);
  disk_.StallWrites(false);
  Open(T2Options(dir));  // the old store finishes its writes first
  EXPECT_EQ(store_->Stats().t2_recovered_blocks, 0u);
  EXPECT_EQ(Lookup(a_).matched_blocks(), 0u);
}

TEST(T2CreateTest, AnUnusableDirectoryFailsCreateWithItsName) {
  const std::string file = ::testing::TempDir() + "/kvtier_t2_plainfile";
  std::ofstream(file) << "x";
  BlockStoreOptions o = SmallStoreOptions(kT1Slots);
  o.t2 = {.directory = file + "/t2", .capacity_bytes = 8 * 4096};
  auto store = BlockStore::Create(o);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(file), std::string_view::npos) << store.status();
  o.t2.directory = FreshDir("badscore");
  o.t2_admit_min_score = 2;
  EXPECT_EQ(BlockStore::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.t2_admit_min_score = 0;
  o.t2_admit_min_return = -0.5;
  absl::StatusOr<std::unique_ptr<BlockStore>> bad_return = BlockStore::Create(o);
  EXPECT_EQ(bad_return.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_return.status().message().find("t2_admit_min_return"), std::string_view::npos);
}

}  // namespace
}  // namespace kvtier
