// Fetch of T2 blocks through a real server while the disk stalls or fails: the store's
// reader threads wait on the disk, never a gRPC thread; a Fetch ends by its deadline; no
// wrong byte is served; the store serves again once the disk does.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "client/cache_store_client.h"
#include "tests/cache_store/disk_faults.h"
#include "tests/cache_store/test_blocks.h"
#include "tests/services/test_prompts.h"
#include "tests/services/test_store_server.h"

namespace kvtier {
namespace {

using testing::DiskFaults;
using testing::TestStoreServer;

constexpr uint32_t kBlocks = 8;

class T2FetchTest : public ::testing::Test {
 protected:
  explicit T2FetchTest(int read_threads = 8)
      : server_({.t1_bytes = 2 * kBlocks * 4096,
                 .min_slot_bytes = 4096,
                 .t2_bytes = 64 * 8192,
                 .t2_fault_injector = disk_.Injector(),
                 .t2_read_threads = read_threads}),
        client_({.target = server_.target(), .timeout = absl::Seconds(10)}) {}

  // A test that fails with the disk stalled must not hang in the store's teardown.
  ~T2FetchTest() override {
    disk_.StallReads(false);
    disk_.FailReads(false);
  }

  std::vector<uint8_t> PayloadOf(uint64_t seed) {
    return testing::RandomBytes(kBlocks * layout_.BlockBytes(), seed);
  }
  // Fetches the prompt's cached prefix into `got`.
  absl::StatusOr<FetchReply> FetchPrompt(CacheStoreClient& client,
                                         const std::vector<uint32_t>& tokens,
                                         std::vector<uint8_t>& got, uint32_t* matched) {
    absl::StatusOr<LookupReply> found = client.Lookup(layout_, tokens);
    if (!found.ok()) return found.status();
    *matched = found->matched_blocks;
    got.assign(found->matched_blocks * layout_.BlockBytes(), 0);
    std::vector<std::span<uint8_t>> out;
    for (uint32_t b = 0; b < found->matched_blocks; ++b) {
      out.push_back(std::span(got).subspan(b * layout_.BlockBytes(), layout_.BlockBytes()));
    }
    absl::StatusOr<FetchReply> r = client.Fetch({.lease_id = found->lease_id}, out);
    (void)client.Release(found->lease_id);
    return r;
  }

  DiskFaults disk_;  // outlives the server's store
  TestStoreServer server_;
  const KvLayout layout_ = testing::SmallLayout();
  CacheStoreClient client_;
  const std::vector<uint32_t> a_ = testing::Tokens(kBlocks * 4, 1);
  const std::vector<uint32_t> b_ = testing::Tokens(kBlocks * 4, 2);
  const std::vector<uint32_t> c_ = testing::Tokens(kBlocks * 4, 3);
};

TEST_F(T2FetchTest, AStalledDiskEndsTheFetchByItsDeadlineAndStallsNothingElse) {
  ASSERT_TRUE(client_.Put(layout_, a_, 0, PayloadOf(1)).ok());
  ASSERT_TRUE(client_.Put(layout_, b_, 0, PayloadOf(2)).ok());
  ASSERT_TRUE(client_.Put(layout_, c_, 0, PayloadOf(3)).ok());  // A to T2
  server_.store().FlushT2Writes();
  disk_.StallReads(true);

  CacheStoreClient impatient({.target = server_.target(), .timeout = absl::Milliseconds(500)});
  std::vector<uint8_t> got;
  uint32_t matched = 0;
  const absl::Time start = absl::Now();
  absl::StatusOr<FetchReply> r = FetchPrompt(impatient, a_, got, &matched);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(matched, kBlocks);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(took, absl::Seconds(5)) << "the fetch outlived its deadline";
  EXPECT_GE(disk_.blocked(), 1) << "the reads are still stuck on the disk";

  // Meanwhile T1 is served at once: no gRPC thread waits on the disk. (A's promotion,
  // stuck on the disk, holds T1 slots it took from B; C is in T1.)
  for (int i = 0; i < 20; ++i) {
    r = FetchPrompt(client_, c_, got, &matched);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(matched, kBlocks);
    ASSERT_EQ(got, PayloadOf(3));
  }

  disk_.StallReads(false);  // the disk comes back: A is served, whole
  server_.store().FlushT2Writes();
  r = FetchPrompt(client_, a_, got, &matched);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(matched, kBlocks);
  EXPECT_EQ(got, PayloadOf(1));
  EXPECT_EQ(server_.store().Stats().checksum_failures, 0u);
}

TEST_F(T2FetchTest, ADiskThatFailsReadsServesNoByteAndTheBlocksBecomeMisses) {
  ASSERT_TRUE(client_.Put(layout_, a_, 0, PayloadOf(1)).ok());
  ASSERT_TRUE(client_.Put(layout_, b_, 0, PayloadOf(2)).ok());
  ASSERT_TRUE(client_.Put(layout_, c_, 0, PayloadOf(3)).ok());  // A to T2
  server_.store().FlushT2Writes();
  disk_.FailReads(true);
  std::vector<uint8_t> got;
  uint32_t matched = 0;
  absl::StatusOr<FetchReply> r = FetchPrompt(client_, a_, got, &matched);
  EXPECT_EQ(matched, kBlocks);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  // Block 0 is a miss already (dropped before the client heard of it), so the prefix is.
  absl::StatusOr<LookupReply> again = client_.Lookup(layout_, a_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->matched_blocks, 0u);
  // The stream ended at block 0; the other reads end on the disk's time, each counted.
  for (absl::Time end = absl::Now() + absl::Seconds(10);
       server_.store().Stats().t2_read_errors < kBlocks && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(server_.store().Stats().t2_read_errors, kBlocks);
  (void)client_.Release(again->lease_id);
  disk_.FailReads(false);
  // Recomputed and stored again, A is served.
  ASSERT_TRUE(client_.Put(layout_, a_, 0, PayloadOf(1)).ok());
  r = FetchPrompt(client_, a_, got, &matched);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(got, PayloadOf(1));
}

// With one reader thread the disk reads go in block order.
class T2StreamingFetchTest : public T2FetchTest {
 protected:
  T2StreamingFetchTest() : T2FetchTest(/*read_threads=*/1) {}
};

// Over the socket a Fetch streams each T2 block as soon as its read ends: the client has
// block 0, verified, while block 1 is still on a stalled disk; the rest follow whole.
TEST_F(T2StreamingFetchTest, AFetchStreamsBlockZeroWhileBlockOneIsStillOnTheDisk) {
  ASSERT_TRUE(client_.Put(layout_, a_, 0, PayloadOf(1)).ok());
  ASSERT_TRUE(client_.Put(layout_, b_, 0, PayloadOf(2)).ok());
  ASSERT_TRUE(client_.Put(layout_, c_, 0, PayloadOf(3)).ok());  // A to T2
  server_.store().FlushT2Writes();
  disk_.StallReadsAfter(1);

  absl::StatusOr<LookupReply> found = client_.Lookup(layout_, a_);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->matched_blocks, kBlocks);
  const uint64_t block_bytes = layout_.BlockBytes();
  std::vector<uint8_t> got(kBlocks * block_bytes, 0);
  std::vector<std::span<uint8_t>> out;
  for (uint32_t b = 0; b < kBlocks; ++b) {
    out.push_back(std::span(got).subspan(b * block_bytes, block_bytes));
  }
  absl::Mutex mu;
  uint64_t block0_verified = 0;  // bytes of block 0 reported
  bool later_block = false;      // any byte of another block reported
  absl::StatusOr<FetchReply> r;
  std::thread fetcher([&] {
    FetchParams params;
    params.on_chunk = [&](uint32_t block, uint64_t, uint64_t length) {
      absl::MutexLock lock(&mu);
      if (block == 0) {
        block0_verified += length;
      } else {
        later_block = true;
      }
    };
    r = client_.Fetch({.lease_id = found->lease_id}, out, params);
  });
  bool block0_whole = false;
  {
    absl::MutexLock lock(&mu);
    auto whole = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return block0_verified == block_bytes; };
    block0_whole = mu.AwaitWithTimeout(absl::Condition(&whole), absl::Seconds(10));
    EXPECT_FALSE(later_block);
  }
  EXPECT_TRUE(block0_whole) << "block 0 did not arrive while the disk held block 1";
  // The disk has not let any read after block 0's through (reads stall until released).
  EXPECT_TRUE(disk_.AwaitBlocked(1, absl::Seconds(10)));
  disk_.StallReads(false);
  fetcher.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(got, PayloadOf(1));
  (void)client_.Release(found->lease_id);
  EXPECT_EQ(server_.store().Stats().checksum_failures, 0u);
}

// A block whose disk read fails after earlier blocks went out ends the stream with
// DATA_LOSS; the blocks before it arrived whole; the failed ones become misses.
TEST_F(T2StreamingFetchTest, ABlockTheDiskFailsMidStreamEndsItWithDataLoss) {
  ASSERT_TRUE(client_.Put(layout_, a_, 0, PayloadOf(1)).ok());
  ASSERT_TRUE(client_.Put(layout_, b_, 0, PayloadOf(2)).ok());
  ASSERT_TRUE(client_.Put(layout_, c_, 0, PayloadOf(3)).ok());  // A to T2
  server_.store().FlushT2Writes();
  disk_.FailReadsAfter(3);
  std::vector<uint8_t> got;
  uint32_t matched = 0;
  absl::StatusOr<FetchReply> r = FetchPrompt(client_, a_, got, &matched);
  EXPECT_EQ(matched, kBlocks);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("block 3"));
  const std::vector<uint8_t> want = PayloadOf(1);
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + 3 * layout_.BlockBytes(), want.begin()))
      << "the blocks before the failure arrive whole";
  disk_.FailReads(false);
  // Block 3 was dropped before the client heard of it (the blocks after it may still be on
  // their way through the disk).
  absl::StatusOr<LookupReply> again = client_.Lookup(layout_, a_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->matched_blocks, 3u);
  (void)client_.Release(again->lease_id);
}

}  // namespace
}  // namespace kvtier
