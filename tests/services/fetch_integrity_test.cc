// Integrity of the data plane (docs/api.md "Integrity"): every layer of a block is checked
// against the checksum taken at Put, by the store before it serves the layer and by the
// client before it reports it, and each side hashes each byte once (the hash budget).
// Same-node corruption cases are in shm_data_plane_test.cc.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstring>

#include "cache_store/checksum.h"
#include "client/cache_store_client.h"
#include "kvtier/v1/cache_store.grpc.pb.h"
#include "proto/payload_wire.h"
#include "tests/services/scripted_fetch_store.h"
#include "tests/services/test_store_server.h"

namespace kvtier {
namespace {

// A message that owns its bytes (EncodeFetchChunk references the payload).
grpc::ByteBuffer Owned(const grpc::ByteBuffer& referencing) {
  std::vector<grpc::Slice> slices;
  (void)referencing.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// One 64-byte block of two 32-byte layers in two chunks; the second layer's bytes are
// damaged in transit (the block list announces the checksums of the right bytes).
std::vector<grpc::ByteBuffer> DamagedLayerScript() {
  uint8_t good[64], bad[64];
  for (int i = 0; i < 64; ++i) good[i] = static_cast<uint8_t>(i * 7);
  std::memcpy(bad, good, 64);
  bad[40] ^= 1;
  v1::FetchResponse head;
  v1::FetchedBlock* b = head.add_blocks();
  b->set_key(std::string(32, 'k'));
  b->set_size_bytes(64);
  b->add_layer_checksums(RangeChecksum(good, 32));
  b->add_layer_checksums(RangeChecksum(good + 32, 32));
  b->set_checksum(DigestLayerChecksums(
      std::span(b->layer_checksums().data(), static_cast<size_t>(b->layer_checksums_size()))));
  std::vector<grpc::ByteBuffer> messages;
  messages.push_back(EncodeMessage(head));
  messages.push_back(Owned(EncodeFetchChunk(0, 0, {good, 32})));
  messages.push_back(Owned(EncodeFetchChunk(0, 32, {bad + 32, 32})));
  return messages;
}

// Fetches the one block the script serves into `buffer`, recording each (offset, length)
// the client reports as verified.
absl::StatusOr<FetchReply> FetchReporting(testing::ScriptedFetchStore& store,
                                          std::vector<uint8_t>& buffer,
                                          std::vector<std::pair<uint64_t, uint64_t>>& reported) {
  CacheStoreClient client({.target = store.target()});
  std::vector<std::span<uint8_t>> out{buffer};
  return client.Fetch({.keys = {BlockKey{}}}, out,
                      {.on_chunk = [&](uint32_t, uint64_t offset, uint64_t length) {
                        reported.emplace_back(offset, length);
                      }});
}

TEST(FetchIntegrityTest, TheClientRejectsALayerDamagedInTransitBeforeReportingIt) {
  testing::ScriptedFetchStore store(DamagedLayerScript());
  std::vector<uint8_t> buffer(64);
  std::vector<std::pair<uint64_t, uint64_t>> reported;
  absl::StatusOr<FetchReply> r = FetchReporting(store, buffer, reported);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("layer 1 of block 0 failed its checksum"), std::string::npos)
      << r.status();
  EXPECT_EQ(reported, (std::vector<std::pair<uint64_t, uint64_t>>{{0, 32}}))
      << "only the verified layer was reported";
}

// A layer split over several chunks is reported once it is complete and verified.
TEST(FetchIntegrityTest, ALayerInSeveralChunksIsReportedWhenComplete) {
  std::vector<grpc::ByteBuffer> script = DamagedLayerScript();
  uint8_t good[64];
  for (int i = 0; i < 64; ++i) good[i] = static_cast<uint8_t>(i * 7);
  script.resize(1);
  for (int off = 0; off < 64; off += 8) {
    script.push_back(Owned(EncodeFetchChunk(0, off, {good + off, 8})));
  }
  testing::ScriptedFetchStore store(std::move(script));
  std::vector<uint8_t> buffer(64);
  std::vector<std::pair<uint64_t, uint64_t>> reported;
  absl::StatusOr<FetchReply> r = FetchReporting(store, buffer, reported);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(reported, (std::vector<std::pair<uint64_t, uint64_t>>{{0, 32}, {32, 32}}));
  EXPECT_EQ(std::memcmp(buffer.data(), good, 64), 0);
  EXPECT_EQ(r->bytes, 64u);
}

// A stream that breaks (UNAVAILABLE) after a verified layer was reported is not retried:
// the caller may already be using those bytes. Without on_chunk the client retries.
TEST(FetchIntegrityTest, AFetchThatReportedLayersIsNotRetried) {
  std::vector<grpc::ByteBuffer> script = DamagedLayerScript();
  script.pop_back();  // the block list and the first (good) layer, then the stream breaks
  testing::ScriptedFetchStore store(std::move(script),
                                    grpc::Status(grpc::StatusCode::UNAVAILABLE, "went away"));
  ClientOptions o;
  o.target = store.target();
  o.timeout = absl::Seconds(2);
  CacheStoreClient client(o);
  std::vector<uint8_t> buffer(64);
  std::vector<std::span<uint8_t>> out{buffer};
  int reported = 0;
  absl::StatusOr<FetchReply> r = client.Fetch(
      {.keys = {BlockKey{}}}, out, {.on_chunk = [&](uint32_t, uint64_t, uint64_t) { ++reported; }});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(reported, 1);
  EXPECT_EQ(store.calls(), 1) << "retried after reporting a layer";
  r = client.Fetch({.keys = {BlockKey{}}}, out);
  EXPECT_FALSE(r.ok());
  EXPECT_GT(store.calls(), 2) << "without on_chunk a broken stream is retried";
}

class StoreIntegrityTest : public ::testing::Test {
 protected:
  StoreIntegrityTest() : client_({.target = store_.target()}) {
    for (uint32_t i = 0; i < 32; ++i) tokens_.push_back(i);
    payload_.resize(2 * layout_.BlockBytes());
    for (size_t i = 0; i < payload_.size(); ++i) payload_[i] = static_cast<uint8_t>(i * 31 + 7);
  }

  absl::StatusOr<FetchReply> FetchAll(const std::vector<BlockKey>& keys, std::vector<uint8_t>& got,
                                      uint32_t chunk_bytes = 0) {
    got.assign(payload_.size(), 0);
    std::vector<std::span<uint8_t>> out;
    for (size_t b = 0; b < keys.size(); ++b) {
      out.push_back(std::span(got).subspan(b * layout_.BlockBytes(), layout_.BlockBytes()));
    }
    return client_.Fetch({.keys = keys}, out,
                         {.order = v1::FETCH_ORDER_LAYER_MAJOR, .max_chunk_bytes = chunk_bytes});
  }

  testing::TestStoreServer store_;
  const KvLayout layout_ = Llama3_8BLayout();
  CacheStoreClient client_;
  std::vector<uint32_t> tokens_;
  std::vector<uint8_t> payload_;
};

// The block list carries the layer checksums taken at Put; the bytes arrive intact.
TEST_F(StoreIntegrityTest, TheStoreListsTheLayerChecksumsTakenAtPut) {
  absl::StatusOr<PutReply> put = client_.Put(layout_, tokens_, 0, payload_);
  ASSERT_TRUE(put.ok()) << put.status();
  std::vector<uint8_t> got;
  absl::StatusOr<FetchReply> r = FetchAll(put->keys, got, 40000);  // layers in two chunks
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(got, payload_);
  ASSERT_EQ(r->blocks.size(), 2u);
  for (size_t b = 0; b < 2; ++b) {
    const v1::FetchedBlock& block = r->blocks[b];
    ASSERT_EQ(block.layer_checksums_size(), static_cast<int>(layout_.num_layers));
    std::vector<uint64_t> sums(layout_.num_layers);
    const uint64_t digest = ComputeLayerChecksums(payload_.data() + b * layout_.BlockBytes(),
                                                  layout_.LayerBytes(), sums);
    for (uint32_t l = 0; l < layout_.num_layers; ++l) {
      EXPECT_EQ(block.layer_checksums(static_cast<int>(l)), sums[l]) << "block " << b;
    }
    EXPECT_EQ(block.checksum(), digest);
  }
}

// A bit flipped in T1 after the Put is caught by the store before the layer leaves: the
// Fetch fails with DATA_LOSS, the block is dropped and counted, the intact block survives.
TEST_F(StoreIntegrityTest, ACorruptedByteInT1IsCaughtAndTheBlockDropped) {
  absl::StatusOr<PutReply> put = client_.Put(layout_, tokens_, 0, payload_);
  ASSERT_TRUE(put.ok()) << put.status();
  {
    auto read = store_.store().ReadBlocks("default", std::span(put->keys).subspan(1, 1));
    ASSERT_TRUE(read.ok());
    const_cast<uint8_t*>((*read)->blocks()[0].data)[5 * layout_.LayerBytes() + 9] ^= 0x10;
  }
  std::vector<uint8_t> got;
  absl::StatusOr<FetchReply> r = FetchAll(put->keys, got);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find("failed its checksum in layer 5"), std::string::npos)
      << r.status();
  EXPECT_EQ(store_.store().Stats().checksum_failures, 1u);
  absl::StatusOr<LookupReply> hit = client_.Lookup(layout_, tokens_, {.lease = false});
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->matched_blocks, 1u);  // block 1 is gone, block 0 is intact
  std::vector<uint8_t> one(layout_.BlockBytes());
  std::vector<std::span<uint8_t>> out{one};
  ASSERT_TRUE(client_.Fetch({.keys = {put->keys[0]}}, out).ok());
  EXPECT_EQ(0, std::memcmp(one.data(), payload_.data(), one.size()));
}

// The hash budget: a Put costs its bytes once on each side, and a Fetch of T1 blocks once
// on the store's side (the layer checks before sending) and once on the client's.
TEST_F(StoreIntegrityTest, EachSideHashesEachByteOnce) {
  const uint64_t bytes = payload_.size();
  uint64_t before = HashedBytes();
  absl::StatusOr<PutReply> put = client_.Put(layout_, tokens_, 0, payload_);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(HashedBytes() - before, 2 * bytes) << "client + store, at Put";
  for (uint32_t chunk : {0u, 40000u}) {  // whole layers per chunk, and layers split in two
    std::vector<uint8_t> got;
    before = HashedBytes();
    absl::StatusOr<FetchReply> r = FetchAll(put->keys, got, chunk);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(HashedBytes() - before, 2 * bytes) << "store + client, at Fetch, chunk " << chunk;
    EXPECT_EQ(got, payload_);
  }
}

}  // namespace
}  // namespace kvtier
