// Fetch of T2 blocks through a real server while the disk stalls or fails: the store's
// reader threads wait on the disk, never a gRPC thread; a Fetch ends by its deadline; no
// wrong byte is served; the store serves again once the disk does.
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
  T2FetchTest()
      : server_({.t1_bytes = 2 * kBlocks * 4096,
                 .min_slot_bytes = 4096,
                 .t2_bytes = 64 * 8192,
                 .t2_fault_injector = disk_.Injector()}),
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
  EXPECT_EQ(server_.store().Stats().t2_read_errors, kBlocks);
  absl::StatusOr<LookupReply> again = client_.Lookup(layout_, a_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->matched_blocks, 0u);
  (void)client_.Release(again->lease_id);
  disk_.FailReads(false);
  // Recomputed and stored again, A is served.
  ASSERT_TRUE(client_.Put(layout_, a_, 0, PayloadOf(1)).ok());
  r = FetchPrompt(client_, a_, got, &matched);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(got, PayloadOf(1));
}

}  // namespace
}  // namespace kvtier
