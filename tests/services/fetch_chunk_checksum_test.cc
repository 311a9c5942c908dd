// Fetch chunks carry their own XXH3 (FetchResponse.chunk_checksum): the real store sends
// one for every chunk, and the client refuses a chunk whose bytes do not match it before
// reporting it through on_chunk (so a layer-pipelined consumer never sees unverified bytes).
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

// One 64-byte block in two chunks; the second chunk's bytes are damaged in transit (its
// checksum is that of the right bytes).
std::vector<grpc::ByteBuffer> DamagedChunkScript() {
  uint8_t good[64], bad[64];
  for (int i = 0; i < 64; ++i) good[i] = static_cast<uint8_t>(i * 7);
  std::memcpy(bad, good, 64);
  bad[40] ^= 1;
  v1::FetchResponse head;
  v1::FetchedBlock* b = head.add_blocks();
  b->set_key(std::string(32, 'k'));
  b->set_size_bytes(64);
  b->set_checksum(BlockChecksum(good, 64));
  std::vector<grpc::ByteBuffer> messages;
  messages.push_back(EncodeMessage(head));
  // EncodeFetchChunk references the payload: copy it into a message of its own.
  auto owned = [](const grpc::ByteBuffer& referencing) {
    std::vector<grpc::Slice> slices;
    (void)referencing.Dump(&slices);
    std::string bytes;
    for (const grpc::Slice& s : slices)
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    grpc::Slice slice(bytes);
    return grpc::ByteBuffer(&slice, 1);
  };
  messages.push_back(owned(EncodeFetchChunk(0, 0, {good, 32}, BlockChecksum(good, 32))));
  messages.push_back(owned(EncodeFetchChunk(0, 32, {bad + 32, 32}, BlockChecksum(good + 32, 32))));
  return messages;
}

TEST(FetchChunkChecksumTest, TheClientRejectsADamagedChunkBeforeReportingIt) {
  testing::ScriptedFetchStore store(DamagedChunkScript());
  CacheStoreClient client({.target = store.target()});
  std::vector<uint8_t> buffer(64);
  std::vector<std::span<uint8_t>> out{buffer};
  std::vector<uint64_t> reported;
  absl::StatusOr<FetchReply> r = client.Fetch(
      {.keys = {BlockKey{}}}, out,
      {.on_chunk = [&](uint32_t, uint64_t offset, uint64_t) { reported.push_back(offset); }});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("chunk [32, 64) of block 0 failed its checksum"),
            std::string::npos)
      << r.status();
  EXPECT_EQ(reported, std::vector<uint64_t>{0}) << "only the verified chunk was reported";
}

// A stream that breaks (UNAVAILABLE) after a verified chunk was reported is not retried:
// the caller may already be using those bytes. Without on_chunk the client retries.
TEST(FetchChunkChecksumTest, AFetchThatReportedChunksIsNotRetried) {
  std::vector<grpc::ByteBuffer> script = DamagedChunkScript();
  script.pop_back();  // the block list and the first (good) chunk, then the stream breaks
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
  EXPECT_EQ(store.calls(), 1) << "retried after reporting a chunk";
  r = client.Fetch({.keys = {BlockKey{}}}, out);
  EXPECT_FALSE(r.ok());
  EXPECT_GT(store.calls(), 2) << "without on_chunk a broken stream is retried";
}

TEST(FetchChunkChecksumTest, TheStoreSendsAChecksumWithEveryChunk) {
  testing::TestStoreServer store;
  const KvLayout layout = Llama3_8BLayout();
  std::vector<uint32_t> tokens(32);
  for (uint32_t i = 0; i < 32; ++i) tokens[i] = i;
  std::vector<uint8_t> payload(2 * layout.BlockBytes());
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 31 + 7);
  CacheStoreClient client({.target = store.target()});
  absl::StatusOr<PutReply> put = client.Put(layout, tokens, 0, payload);
  ASSERT_TRUE(put.ok()) << put.status();

  // A raw Fetch, as any gRPC client would see it.
  auto channel = grpc::CreateChannel(store.target(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-kvtier-tenant", "default");
  v1::FetchRequest request;
  for (const BlockKey& k : put->keys) request.add_block_keys(std::string(k.AsBytes()));
  request.set_order(v1::FETCH_ORDER_LAYER_MAJOR);
  request.set_max_chunk_bytes(40000);
  grpc::CompletionQueue cq;
  // Synchronous generic streaming through the client's raw call helper would hide the
  // wire; read the messages with a plain generic call instead.
  auto call = stub.PrepareCall(&ctx, "/kvtier.v1.CacheStore/Fetch", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer out = EncodeMessage(request);
  call->WriteLast(out, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  int chunks = 0;
  uint64_t bytes = 0;
  while (true) {
    grpc::ByteBuffer message;
    call->Read(&message, reinterpret_cast<void*>(3));
    if (!cq.Next(&tag, &ok) || !ok) break;
    v1::FetchResponse r;
    ASSERT_TRUE(DecodeMessage(message, &r).ok());
    if (r.blocks_size() > 0) continue;
    ++chunks;
    bytes += r.data().size();
    EXPECT_NE(r.chunk_checksum(), 0u);
    EXPECT_EQ(r.chunk_checksum(), BlockChecksum(r.data().data(), r.data().size()))
        << "chunk at " << r.offset();
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(bytes, payload.size());
  EXPECT_GT(chunks, 64);  // 2 blocks x 32 layers, each layer in two chunks
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace
}  // namespace kvtier
