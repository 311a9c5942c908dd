// Same-node delivery: the real store writes fetched blocks into the client's shared-memory
// region (FetchRequest.shm) and the stream carries only what was written where. The bytes
// must equal what a socket Fetch delivers, every range is verified in place before it is
// reported, a store without --shm_dir refuses, and the store never opens anything but a
// plain file of its directory, nor writes outside the client's blocks.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "cache_store/checksum.h"
#include "client/cache_store_client.h"
#include "client/shared_memory_region.h"
#include "proto/payload_wire.h"
#include "services/shm_writer.h"
#include "tests/services/scripted_fetch_store.h"
#include "tests/services/test_store_server.h"

namespace kvtier {
namespace {

KvLayout Layout() {
  return KvLayout{.model_id = "shm-test",
                  .num_layers = 4,
                  .num_kv_heads = 2,
                  .head_dim = 64,
                  .dtype = DType::kBf16,
                  .tokens_per_block = 16};
}

std::string TempDir() {
  std::string dir = (std::filesystem::temp_directory_path() / "kvtier-shm-XXXXXX").string();
  EXPECT_NE(::mkdtemp(dir.data()), nullptr);
  return dir;
}

class ShmFetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClientOptions o;
    o.target = store_.target();
    o.tenant = "t";
    client_ = std::make_unique<CacheStoreClient>(o);
    tokens_.resize(kBlocks * Layout().tokens_per_block);
    for (size_t i = 0; i < tokens_.size(); ++i) tokens_[i] = static_cast<uint32_t>(i * 13 + 1);
    payload_.resize(kBlocks * Layout().BlockBytes());
    std::mt19937 rng(9);
    for (uint8_t& b : payload_) b = static_cast<uint8_t>(rng());
    absl::StatusOr<PutReply> put = client_->Put(Layout(), tokens_, 0, payload_);
    ASSERT_TRUE(put.ok()) << put.status();
    keys_ = put->keys;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static constexpr uint32_t kBlocks = 5;
  const std::string dir_ = TempDir();
  testing::TestStoreServer store_{{.slot_bytes = Layout().BlockBytes(), .shm_dir = dir_}};
  std::unique_ptr<CacheStoreClient> client_;
  std::vector<uint32_t> tokens_;
  std::vector<uint8_t> payload_;
  std::vector<BlockKey> keys_;
};

TEST_F(ShmFetchTest, TheStoreWritesTheBlocksIntoTheRegion) {
  const uint64_t block = Layout().BlockBytes();
  for (v1::FetchOrder order : {v1::FETCH_ORDER_LAYER_MAJOR, v1::FETCH_ORDER_BLOCK_MAJOR}) {
    // Blocks at scattered places of the region, in reverse, with gaps (as pages of a pool).
    absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
        SharedMemoryRegion::Create(dir_, (2 * kBlocks + 1) * block);
    ASSERT_TRUE(region.ok()) << region.status();
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/" + (*region)->name()));
    std::vector<std::span<uint8_t>> out;
    for (uint32_t b = 0; b < kBlocks; ++b) {
      out.emplace_back((*region)->data() + (2 * (kBlocks - b) - 1) * block, block);
    }
    uint64_t reported = 0;
    absl::StatusOr<FetchReply> reply = client_->Fetch(
        {.keys = keys_}, out,
        {.order = order,
         .on_chunk = [&](uint32_t, uint64_t, uint64_t length) { reported += length; },
         .shm = region->get()});
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->bytes, payload_.size());
    EXPECT_EQ(reported, payload_.size());
    for (uint32_t b = 0; b < kBlocks; ++b) {
      EXPECT_EQ(std::memcmp(out[b].data(), payload_.data() + b * block, block), 0) << b;
    }
    // Nothing was written outside the blocks.
    for (uint64_t i = 0; i < block; ++i) ASSERT_EQ((*region)->data()[i], 0) << i;
    const std::string path = dir_ + "/" + (*region)->name();
    region->reset();
    EXPECT_FALSE(std::filesystem::exists(path)) << "the region's file outlives it";
  }
}

TEST_F(ShmFetchTest, BuffersOutsideTheRegionAreRefusedBeforeAnyCall) {
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
      SharedMemoryRegion::Create(dir_, Layout().BlockBytes());
  ASSERT_TRUE(region.ok());
  std::vector<uint8_t> heap(Layout().BlockBytes());
  std::vector<std::span<uint8_t>> out = {{heap.data(), heap.size()}};
  absl::StatusOr<FetchReply> reply =
      client_->Fetch({.keys = {keys_[0]}}, out, {.shm = region->get()});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(reply.status().message().find("not inside the region"), std::string::npos);
}

TEST(ShmFetchNoDirTest, AStoreWithoutShmDirRefusesSameNodeDelivery) {
  testing::TestStoreServer store({.slot_bytes = Layout().BlockBytes()});
  ClientOptions o;
  o.target = store.target();
  CacheStoreClient client(o);
  std::vector<uint32_t> tokens(16, 3);
  std::vector<uint8_t> payload(Layout().BlockBytes(), 7);
  absl::StatusOr<PutReply> put = client.Put(Layout(), tokens, 0, payload);
  ASSERT_TRUE(put.ok());
  const std::string dir = TempDir();
  auto region = *SharedMemoryRegion::Create(dir, payload.size());
  std::vector<std::span<uint8_t>> out = {{region->data(), payload.size()}};
  absl::StatusOr<FetchReply> reply = client.Fetch({.keys = put->keys}, out, {.shm = region.get()});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reply.status().message().find("--shm_dir"), std::string::npos) << reply.status();
  region.reset();
  std::filesystem::remove_all(dir);
}

TEST(ShmWriterTest, OnlyPlainFilesOfTheDirectoryAreOpened) {
  const std::string dir = TempDir();
  const std::string outside = TempDir();
  { std::ofstream(outside + "/secret") << "x"; }
  std::filesystem::create_symlink(outside + "/secret", dir + "/link");
  std::filesystem::create_directory(dir + "/sub");
  { std::ofstream(dir + "/ok") << std::string(100, '\0'); }
  EXPECT_EQ(ShmWriter::Open("", "ok").status().code(), absl::StatusCode::kFailedPrecondition);
  for (const char* bad : {"../secret", "a/b", ".hidden", "", "sp ace"}) {
    EXPECT_EQ(ShmWriter::Open(dir, bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ShmWriter::Open(dir, "missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(ShmWriter::Open(dir, "link").ok());  // O_NOFOLLOW
  EXPECT_FALSE(ShmWriter::Open(dir, "sub").ok());
  absl::StatusOr<std::unique_ptr<ShmWriter>> w = ShmWriter::Open(dir, "ok");
  ASSERT_TRUE(w.ok()) << w.status();

  // Placement: an offset per block, inside the file, no overlap.
  const uint8_t bytes[40] = {};
  const std::vector<BlockView> blocks = {{.data = bytes, .size = 40}, {.data = bytes, .size = 40}};
  EXPECT_TRUE((*w)->CheckPlacement(std::vector<uint64_t>{0, 60}, blocks).ok());
  EXPECT_FALSE((*w)->CheckPlacement(std::vector<uint64_t>{0}, blocks).ok());
  EXPECT_FALSE((*w)->CheckPlacement(std::vector<uint64_t>{0, 61}, blocks).ok());
  EXPECT_FALSE((*w)->CheckPlacement(std::vector<uint64_t>{0, 39}, blocks).ok());
  EXPECT_FALSE((*w)->CheckPlacement(std::vector<uint64_t>{~uint64_t{0}, 0}, blocks).ok());
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(outside);
}

// What a dead worker left (no lock held) is reclaimed by the next region of the directory;
// a live region's file is not; UnlinkSharedMemoryRegions removes this process's files.
TEST(SharedMemoryRegionTest, StaleFilesAreReclaimedAndLiveOnesKept) {
  const std::string dir = TempDir();
  { std::ofstream(dir + "/kvtier-1-dead") << "left behind"; }
  { std::ofstream(dir + "/not-ours") << "x"; }
  auto live = *SharedMemoryRegion::Create(dir, 4096);
  EXPECT_FALSE(std::filesystem::exists(dir + "/kvtier-1-dead"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/not-ours"));
  auto second = *SharedMemoryRegion::Create(dir, 4096);
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + live->name()));
  EXPECT_EQ(RemoveStaleSharedMemory(dir), 0);
  live->data()[0] = 1;  // still mapped and usable
  UnlinkSharedMemoryRegions();
  EXPECT_FALSE(std::filesystem::exists(dir + "/" + live->name()));
  EXPECT_FALSE(std::filesystem::exists(dir + "/" + second->name()));
  EXPECT_EQ(live->data()[0], 1);
  live.reset();
  second.reset();
  std::filesystem::remove_all(dir);
}

// A store that reports a range it never wrote: the client checks the bytes in place and
// refuses before reporting them.
TEST(ShmFetchLyingStoreTest, RangesAreVerifiedInPlaceBeforeTheyAreReported) {
  uint8_t good[64];
  for (int i = 0; i < 64; ++i) good[i] = static_cast<uint8_t>(i + 1);
  v1::FetchResponse head;
  v1::FetchedBlock* b = head.add_blocks();
  b->set_key(std::string(32, 'k'));
  b->set_size_bytes(64);
  b->set_checksum(BlockChecksum(good, 64));
  v1::FetchResponse claim;
  v1::ShmChunk* c = claim.add_shm_chunks();
  c->set_block(0);
  c->set_offset(0);
  c->set_length(64);
  c->set_checksum(BlockChecksum(good, 64));
  testing::ScriptedFetchStore store({EncodeMessage(head), EncodeMessage(claim)});
  ClientOptions o;
  o.target = store.target();
  CacheStoreClient client(o);
  const std::string dir = TempDir();
  auto region = *SharedMemoryRegion::Create(dir, 64);
  std::vector<std::span<uint8_t>> out = {{region->data(), 64}};
  bool reported = false;
  absl::StatusOr<FetchReply> reply = client.Fetch(
      {.keys = {BlockKey{}}}, out,
      {.on_chunk = [&](uint32_t, uint64_t, uint64_t) { reported = true; }, .shm = region.get()});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDataLoss) << reply.status();
  EXPECT_FALSE(reported);
  region.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvtier
