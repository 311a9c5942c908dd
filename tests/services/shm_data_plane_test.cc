// The same-node data plane against the real store: a client attaches a memfd region over
// the store's Unix socket, and Fetch and Put copy blocks straight between T1 and that
// region. The bytes equal what the socket delivers, each side hashes each byte at most
// once, and no client, however it misbehaves (descriptors that are not sealed memfds,
// truncation, hole punching, writing while the store copies, closing its connection in
// the middle of a fetch, dying, naming another tenant's region), can crash, stall or
// corrupt the store.
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <thread>

#include "absl/strings/escaping.h"
#include "bench/child_process.h"
#include "cache_store/checksum.h"
#include "client/cache_store_client.h"
#include "client/raw_stream_call.h"
#include "client/shared_memory_region.h"
#include "client/shm_attach.h"
#include "proto/payload_wire.h"
#include "proto/wire_convert.h"
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
                  .tokens_per_block = 16};  // 16 KiB blocks of 4 KiB layers
}

// A memfd of `bytes` as a misbehaving client might make it.
int Memfd(uint64_t bytes, bool reserve, int seals) {
  const int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
  if (reserve) {
    EXPECT_EQ(posix_fallocate(fd, 0, static_cast<off_t>(bytes)), 0);
  }
  if (seals != 0) {
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, seals), 0);
  }
  return fd;
}

class ShmDataPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = MakeClient("t");
    tokens_.resize(kBlocks * Layout().tokens_per_block);
    for (size_t i = 0; i < tokens_.size(); ++i) tokens_[i] = static_cast<uint32_t>(i * 13 + 1);
    payload_.resize(kBlocks * Layout().BlockBytes());
    std::mt19937 rng(9);
    for (uint8_t& b : payload_) b = static_cast<uint8_t>(rng());
    absl::StatusOr<PutReply> put = client_->Put(Layout(), tokens_, 0, payload_);
    ASSERT_TRUE(put.ok()) << put.status();
    keys_ = put->keys;
  }

  std::unique_ptr<CacheStoreClient> MakeClient(const std::string& tenant,
                                               const std::string& target = "") {
    ClientOptions o;
    o.target = target.empty() ? store_.target() : target;
    o.tenant = tenant;
    o.shm_socket = store_.shm_socket();
    o.timeout = absl::Seconds(10);
    return std::make_unique<CacheStoreClient>(o);
  }

  // Blocks at scattered places of a fresh region, in reverse, with gaps (as pages of a pool).
  std::vector<std::span<uint8_t>> Scattered(SharedMemoryRegion& region) {
    std::vector<std::span<uint8_t>> out;
    const uint64_t block = Layout().BlockBytes();
    for (uint32_t b = 0; b < kBlocks; ++b) {
      out.emplace_back(region.data() + (2 * (kBlocks - b) - 1) * block, block);
    }
    return out;
  }

  // A same-node Fetch of all the blocks into `region_id` at offset 0, as raw gRPC (no
  // client library, so the client side can misbehave between messages): on_message runs
  // after each message arrives, with its number (1: the block list).
  grpc::Status RawSameNodeFetch(const std::string& region_id,
                                const std::function<void(int)>& on_message = {}) {
    v1::FetchRequest fetch;
    for (const BlockKey& k : keys_) fetch.add_block_keys(std::string(k.AsBytes()));
    fetch.set_order(v1::FETCH_ORDER_LAYER_MAJOR);
    fetch.mutable_shm()->set_region_id(region_id);
    for (uint32_t i = 0; i < kBlocks; ++i) {
      fetch.mutable_shm()->add_offsets(i * Layout().BlockBytes());
    }
    grpc::GenericStub stub(
        grpc::CreateChannel(store_.target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-kvtier-tenant", "t");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    RawStreamCall call(stub, ctx, "/kvtier.v1.CacheStore/Fetch");
    if (call.Write(EncodeMessage(fetch)) && call.WritesDone()) {
      grpc::ByteBuffer m;
      for (int n = 1; call.Read(&m); ++n) {
        if (on_message) on_message(n);
      }
    }
    return call.Finish();
  }

  // The store's view: everything fetched over the socket is the payload Put.
  void ExpectTheStoreIsIntact() {
    std::vector<uint8_t> got(payload_.size());
    std::vector<std::span<uint8_t>> out;
    for (uint32_t b = 0; b < kBlocks; ++b) {
      out.push_back(std::span(got).subspan(b * Layout().BlockBytes(), Layout().BlockBytes()));
    }
    absl::StatusOr<FetchReply> r = client_->Fetch({.keys = keys_}, out);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(got, payload_);
    EXPECT_EQ(store_.store().Stats().checksum_failures, 0u);
  }

  static constexpr uint32_t kBlocks = 5;
  testing::TestStoreServer store_{
      {.min_slot_bytes = Layout().BlockBytes(),
       .same_node = true,
       .shm_attach_timeout = absl::Milliseconds(300),
       .shm_regions = {.max_regions = 8, .max_total_bytes = uint64_t{64} << 20}}};
  std::unique_ptr<CacheStoreClient> client_;
  std::vector<uint32_t> tokens_;
  std::vector<uint8_t> payload_;
  std::vector<BlockKey> keys_;
};

TEST_F(ShmDataPlaneTest, FetchCopiesTheBlocksIntoTheRegionHashedOncePerSide) {
  const uint64_t block = Layout().BlockBytes();
  for (v1::FetchOrder order : {v1::FETCH_ORDER_LAYER_MAJOR, v1::FETCH_ORDER_BLOCK_MAJOR}) {
    absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
        SharedMemoryRegion::Create((2 * kBlocks + 1) * block);
    ASSERT_TRUE(region.ok()) << region.status();
    std::vector<std::span<uint8_t>> out = Scattered(**region);
    uint64_t reported = 0;
    const uint64_t hashed = HashedBytes();
    absl::StatusOr<FetchReply> reply = client_->Fetch(
        {.keys = keys_}, out,
        {.order = order,
         .on_chunk = [&](uint32_t, uint64_t, uint64_t length) { reported += length; },
         .shm = region->get()});
    ASSERT_TRUE(reply.ok()) << reply.status();
    // The store checked each layer as it copied it, the client once where it landed.
    EXPECT_EQ(HashedBytes() - hashed, 2 * payload_.size());
    EXPECT_EQ(reply->bytes, payload_.size());
    EXPECT_EQ(reported, payload_.size());
    for (uint32_t b = 0; b < kBlocks; ++b) {
      EXPECT_EQ(std::memcmp(out[b].data(), payload_.data() + b * block, block), 0) << b;
    }
    for (uint64_t i = 0; i < block; ++i) ASSERT_EQ((*region)->data()[i], 0) << "outside, " << i;
  }
}

TEST_F(ShmDataPlaneTest, PutCopiesTheBlocksFromTheRegionHashedOnlyByTheStore) {
  const uint64_t block = Layout().BlockBytes();
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
      SharedMemoryRegion::Create((2 * kBlocks + 1) * block);
  ASSERT_TRUE(region.ok());
  std::vector<std::span<uint8_t>> in = Scattered(**region);
  std::vector<uint32_t> tokens = tokens_;
  tokens[0] ^= 1;  // another prompt: new blocks
  std::vector<uint8_t> payload(payload_.rbegin(), payload_.rend());
  std::vector<std::span<const uint8_t>> blocks;
  for (uint32_t b = 0; b < kBlocks; ++b) {
    std::memcpy(in[b].data(), payload.data() + b * block, block);
    blocks.emplace_back(in[b].data(), block);
  }
  const uint64_t hashed = HashedBytes();
  absl::StatusOr<PutReply> put =
      client_->PutBlocks(Layout(), tokens, 0, blocks, PutParams{.shm = region->get()});
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored_blocks, kBlocks);
  EXPECT_EQ(HashedBytes() - hashed, payload.size()) << "only the store hashes a same-node Put";
  std::vector<uint8_t> got(payload.size());
  std::vector<std::span<uint8_t>> out;
  for (uint32_t b = 0; b < kBlocks; ++b) out.push_back(std::span(got).subspan(b * block, block));
  ASSERT_TRUE(client_->Fetch({.keys = put->keys}, out).ok());
  EXPECT_EQ(got, payload);
}

TEST_F(ShmDataPlaneTest, BuffersOutsideTheRegionAreRefusedBeforeAnyCall) {
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
      SharedMemoryRegion::Create(Layout().BlockBytes());
  ASSERT_TRUE(region.ok());
  std::vector<uint8_t> heap(Layout().BlockBytes());
  std::vector<std::span<uint8_t>> out = {{heap.data(), heap.size()}};
  absl::StatusOr<FetchReply> reply =
      client_->Fetch({.keys = {keys_[0]}}, out, {.shm = region->get()});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(reply.status().message().find("not inside the region"), std::string::npos);
}

// Without a store on the socket, or a store without the data plane, a same-node call fails
// in a way the caller recognises as "use the socket" (IsSameNodeRefusal).
TEST_F(ShmDataPlaneTest, NoSameNodeStoreIsARefusalNotAnError) {
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
      SharedMemoryRegion::Create(Layout().BlockBytes());
  ASSERT_TRUE(region.ok());
  std::vector<std::span<uint8_t>> out = {{(*region)->data(), Layout().BlockBytes()}};
  ClientOptions o;
  o.target = store_.target();
  o.tenant = "t";
  o.shm_socket = "/nonexistent/kvtier.sock";
  CacheStoreClient lost(o);
  absl::StatusOr<FetchReply> r = lost.Fetch({.keys = {keys_[0]}}, out, {.shm = region->get()});
  EXPECT_TRUE(IsSameNodeRefusal(r.status())) << r.status();

  testing::TestStoreServer plain({.min_slot_bytes = Layout().BlockBytes()});
  std::unique_ptr<CacheStoreClient> other = MakeClient("t", plain.target());  // our socket
  r = other->Fetch({.keys = {keys_[0]}}, out, {.shm = region->get()});
  EXPECT_TRUE(IsSameNodeRefusal(r.status())) << r.status();  // FAILED_PRECONDITION
}

// The store maps only what cannot be truncated under it, and refuses everything else.
TEST_F(ShmDataPlaneTest, OnlySealedFullyReservedMemfdsAreAttached) {
  const std::string socket = store_.shm_socket();
  const uint64_t bytes = 1 << 20;
  struct Case {
    const char* name;
    int fd;
    const char* message;
  };
  char path[] = "/tmp/kvtier-not-memfd-XXXXXX";
  const int file = mkstemp(path);
  ASSERT_EQ(ftruncate(file, bytes), 0);
  unlink(path);
  std::vector<Case> cases = {
      {"unsealed (could be truncated)", Memfd(bytes, true, 0), "F_SEAL_SHRINK"},
      {"sparse", Memfd(bytes, false, F_SEAL_SHRINK), "allocated"},
      {"sealed against writes", Memfd(bytes, true, F_SEAL_SHRINK | F_SEAL_WRITE), "writes"},
      {"a file, not a memfd", file, "memfd"},
      {"too large", Memfd(uint64_t{65} << 20, true, F_SEAL_SHRINK), "limits"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ShmAttachment> a = AttachMemfd(socket, c.fd, "t", "", absl::Seconds(5));
    EXPECT_FALSE(a.ok()) << c.name;
    EXPECT_NE(a.status().message().find(c.message), std::string::npos)
        << c.name << ": " << a.status();
    close(c.fd);
  }
  const int good = Memfd(bytes, true, F_SEAL_SHRINK);
  absl::StatusOr<ShmAttachment> a = AttachMemfd(socket, good, "t", "", absl::Seconds(5));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->size_bytes, bytes);
  EXPECT_EQ(a->region_id.size(), 16u);
  close(a->connection);
  close(good);
}

// Malformed requests, a connection that never sends, and bad credentials are refused; the
// attach socket keeps serving well-behaved clients meanwhile.
TEST_F(ShmDataPlaneTest, TheAttachSocketSurvivesMalformedAndSilentClients) {
  const std::string socket = store_.shm_socket();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket.data(), socket.size());
  auto connect_raw = [&] {
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  };
  const int silent = connect_raw();
  const int garbage = connect_raw();
  ASSERT_EQ(::send(garbage, "\xff\xff\xff", 3, 0), 3);  // not a request, no descriptor
  char reply[512];
  EXPECT_GT(::recv(garbage, reply, sizeof(reply), 0), 0);  // an error answer...
  EXPECT_EQ(::recv(garbage, reply, sizeof(reply), 0), 0);  // ...then the close
  close(garbage);
  // A well-behaved client is served while the silent one waits.
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region = SharedMemoryRegion::Create(1 << 20);
  ASSERT_TRUE(region.ok());
  EXPECT_TRUE((*region)->AttachTo(socket, "t", "", absl::Seconds(5)).ok());
  // The silent one is closed after the request timeout (300 ms here).
  EXPECT_EQ(::recv(silent, reply, sizeof(reply), 0), 0);
  close(silent);
}

TEST(ShmAuthTest, AttachTakesTheTenantFromTheCredentials) {
  char path[] = "/tmp/kvtier-tokens-XXXXXX";
  const int fd = mkstemp(path);
  close(fd);
  std::ofstream(path) << "secret-a tenant-a\n";
  testing::TestStoreServer store({.min_slot_bytes = 16384, .auth_token_file = path, .same_node = true});
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region = SharedMemoryRegion::Create(1 << 20);
  ASSERT_TRUE(region.ok());
  absl::StatusOr<std::string> id =
      (*region)->AttachTo(store.shm_socket(), "tenant-a", "wrong", absl::Seconds(5));
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnauthenticated) << id.status();
  id = (*region)->AttachTo(store.shm_socket(), "", "secret-a", absl::Seconds(5));
  EXPECT_TRUE(id.ok()) << id.status();
  unlink(path);
}

// A region belongs to the tenant that attached it: another tenant naming its id gets
// NOT_FOUND for Fetch and Put, so it can neither write its blocks into that memory nor
// store blocks read from it.
TEST_F(ShmDataPlaneTest, AnotherTenantsRegionIsNotFound) {
  const uint64_t block = Layout().BlockBytes();
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
      SharedMemoryRegion::Create(kBlocks * block);
  ASSERT_TRUE(region.ok());
  std::memset((*region)->data(), 0x77, (*region)->size());
  absl::StatusOr<std::string> id =
      (*region)->AttachTo(store_.shm_socket(), "t", "", absl::Seconds(5));
  ASSERT_TRUE(id.ok());
  // Tenant "u" puts its own block, then names t's region in raw calls.
  std::unique_ptr<CacheStoreClient> u = MakeClient("u");
  absl::StatusOr<PutReply> put = u->Put(Layout(), tokens_, 0, std::span(payload_).first(block));
  ASSERT_TRUE(put.ok());
  auto channel = grpc::CreateChannel(store_.target(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  v1::FetchRequest fetch;
  fetch.add_block_keys(std::string(put->keys[0].AsBytes()));
  fetch.mutable_shm()->set_region_id(*id);
  fetch.mutable_shm()->add_offsets(0);
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-kvtier-tenant", "u");
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/kvtier.v1.CacheStore/Fetch", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  call->WriteLast(EncodeMessage(fetch), grpc::WriteOptions(), reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  grpc::ByteBuffer message;
  call->Read(&message, reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  EXPECT_FALSE(ok) << "the store streamed into another tenant's region";
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  for (uint64_t i = 0; i < (*region)->size(); ++i) ASSERT_EQ((*region)->data()[i], 0x77) << i;

  // A Put of u's naming t's region: the store does not read it.
  std::vector<uint32_t> tokens = tokens_;
  tokens[0] ^= 7;
  v1::PutRequest header;
  v1::PutHeader* h = header.mutable_header();
  *h->mutable_layout() = LayoutToProto(Layout());
  h->mutable_token_ids()->Add(tokens.begin(), tokens.end());
  h->set_num_blocks(1);
  h->mutable_shm()->set_region_id(*id);
  h->mutable_shm()->add_offsets(0);
  grpc::ClientContext put_ctx;
  put_ctx.AddMetadata("x-kvtier-tenant", "u");
  grpc::CompletionQueue put_cq;
  auto put_call = stub.PrepareCall(&put_ctx, "/kvtier.v1.CacheStore/Put", &put_cq);
  put_call->StartCall(reinterpret_cast<void*>(1));
  put_cq.Next(&tag, &ok);
  put_call->WriteLast(EncodeMessage(header), grpc::WriteOptions(), reinterpret_cast<void*>(2));
  put_cq.Next(&tag, &ok);
  put_call->Finish(&status, reinterpret_cast<void*>(3));
  put_cq.Next(&tag, &ok);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  put_cq.Shutdown();
  while (put_cq.Next(&tag, &ok)) {
  }
  absl::StatusOr<LookupReply> none = u->Lookup(Layout(), tokens, {.lease = false});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->matched_blocks, 0u);
}

// A region cannot be truncated once attached (the seal), so the store can never fault on
// it; a client that punches holes into it only costs the store fresh pages on its next
// writes, and every fetch still verifies.
TEST_F(ShmDataPlaneTest, TruncationIsImpossibleAndHolesAreHarmless) {
  const uint64_t block = Layout().BlockBytes();
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
      SharedMemoryRegion::Create((2 * kBlocks + 1) * block);
  ASSERT_TRUE(region.ok());
  std::vector<std::span<uint8_t>> out = Scattered(**region);
  ASSERT_TRUE(client_->Fetch({.keys = keys_}, out, {.shm = region->get()}).ok());
  EXPECT_NE(ftruncate((*region)->fd(), 0), 0) << "a sealed region was truncated";
  EXPECT_EQ(errno, EPERM);
  ASSERT_EQ(fallocate((*region)->fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                      static_cast<off_t>((*region)->size())),
            0);
  absl::StatusOr<FetchReply> again = client_->Fetch({.keys = keys_}, out, {.shm = region->get()});
  ASSERT_TRUE(again.ok()) << again.status();
  for (uint32_t b = 0; b < kBlocks; ++b) {
    EXPECT_EQ(std::memcmp(out[b].data(), payload_.data() + b * block, block), 0) << b;
  }
  ExpectTheStoreIsIntact();
}

// A client that scribbles over its region while the store copies into it sees a checksum
// failure (or correct bytes, by luck of timing), never bytes that passed unverified; the
// store's blocks are untouched.
TEST_F(ShmDataPlaneTest, WritesWhileTheStoreCopiesHurtOnlyTheClient) {
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
      SharedMemoryRegion::Create((2 * kBlocks + 1) * Layout().BlockBytes());
  ASSERT_TRUE(region.ok());
  std::vector<std::span<uint8_t>> out = Scattered(**region);
  // Attached (and checked) before the scribbling starts.
  ASSERT_TRUE(client_->Fetch({.keys = keys_}, out, {.shm = region->get()}).ok());
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    uint8_t v = 0;
    while (!stop) std::memset((*region)->data(), ++v, (*region)->size());
  });
  // Until one scribble is caught (or 3 s pass: whether one lands between the store's copy
  // and the client's check is up to the scheduler; ACorruptedRange... is the exact test).
  int caught = 0;
  const absl::Time until = absl::Now() + absl::Seconds(3);
  while (caught == 0 && absl::Now() < until) {
    absl::StatusOr<FetchReply> r = client_->Fetch({.keys = keys_}, out, {.shm = region->get()});
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
      ++caught;
    }
  }
  stop = true;
  scribbler.join();
  ExpectTheStoreIsIntact();
}

// A store that reports a range it did not write (or a region corrupted in between) is
// caught by the client's check where the bytes lie, before anything is reported.
TEST_F(ShmDataPlaneTest, ACorruptedRangeInTheRegionIsCaughtBeforeItIsReported) {
  const uint64_t block = Layout().BlockBytes();
  const uint64_t layer = Layout().LayerBytes();
  v1::FetchResponse head;
  v1::FetchedBlock* b = head.add_blocks();
  b->set_key(std::string(32, 'k'));
  b->set_size_bytes(block);
  for (uint32_t l = 0; l < Layout().num_layers; ++l) {
    b->add_layer_checksums(RangeChecksum(payload_.data() + l * layer, layer));
  }
  v1::FetchResponse claim;  // layer 0 claimed copied, but the region holds zeros
  v1::BlockRange* chunk = claim.add_ranges();
  chunk->set_length(layer);
  testing::ScriptedFetchStore liar({EncodeMessage(head), EncodeMessage(claim)});
  std::unique_ptr<CacheStoreClient> client = MakeClient("t", liar.target());
  absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region = SharedMemoryRegion::Create(block);
  ASSERT_TRUE(region.ok());
  std::vector<std::span<uint8_t>> out = {{(*region)->data(), block}};
  int reported = 0;
  absl::StatusOr<FetchReply> r = client->Fetch(
      {.keys = {BlockKey{}}}, out,
      {.on_chunk = [&](uint32_t, uint64_t, uint64_t) { ++reported; }, .shm = region->get()});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_EQ(reported, 0);
}

// Closing the attach connection in the middle of a fetch detaches the region for new
// calls; the fetch in flight ends cleanly (the store's own mapping outlives it).
TEST_F(ShmDataPlaneTest, AClientThatDetachesMidFetchLeavesTheStoreHealthy) {
  const uint64_t bytes = kBlocks * Layout().BlockBytes();
  const int fd = Memfd(bytes, true, F_SEAL_SHRINK);
  absl::StatusOr<ShmAttachment> a = AttachMemfd(store_.shm_socket(), fd, "t", "", absl::Seconds(5));
  ASSERT_TRUE(a.ok()) << a.status();
  auto fetch_into_region = [&] {
    return RawSameNodeFetch(a->region_id, [&](int n) {
      if (n == 1 && a->connection >= 0) {  // the block list: now detach
        close(a->connection);
        a->connection = -1;
      }
    });
  };
  const grpc::Status first = fetch_into_region();
  EXPECT_TRUE(first.ok()) << first.error_message();
  // Detached: a later call naming the region is NOT_FOUND, once the store noticed.
  grpc::Status later;
  for (int i = 0; i < 100; ++i) {
    later = fetch_into_region();
    if (later.error_code() == grpc::StatusCode::NOT_FOUND) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(later.error_code(), grpc::StatusCode::NOT_FOUND) << later.error_message();
  // The bytes the store copied before the detach are still in the memfd (ours too).
  void* p = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(std::memcmp(p, payload_.data(), Layout().BlockBytes()), 0);
  munmap(p, bytes);
  close(fd);
  ExpectTheStoreIsIntact();
}

// A client that dies (SIGKILL) while the store copies into its region, which it keeps
// scribbling over: the store notices the closed connection, detaches the region, and goes
// on serving everyone else.
TEST_F(ShmDataPlaneTest, AClientThatDiesIsDetachedAndTheStoreServesOn) {
  const uint64_t bytes = kBlocks * Layout().BlockBytes();
  absl::StatusOr<std::unique_ptr<bench::ChildProcess>> child = bench::ChildProcess::Start(
      KVTIER_SHM_CLIENT_BINARY, {store_.shm_socket(), "t", std::to_string(bytes)});
  ASSERT_TRUE(child.ok());
  absl::StatusOr<std::vector<std::string>> attached =
      (*child)->AwaitLog(std::regex("attached ([0-9a-f]{32})"), absl::Seconds(10));
  ASSERT_TRUE(attached.ok()) << attached.status();
  const std::string id = absl::HexStringToBytes((*attached)[1]);
  // Fetch into the dying client's region (same tenant) while it scribbles, then kill it.
  std::atomic<bool> detached{false};
  std::thread fetcher([&] {
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (absl::Now() < give_up) {
      const grpc::Status status = RawSameNodeFetch(id);
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
        detached = true;
        return;
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(200));
  (*child)->Signal(SIGKILL);
  EXPECT_TRUE((*child)->Wait(absl::Seconds(10)).has_value());
  fetcher.join();
  EXPECT_TRUE(detached) << "the dead client's region stayed attached";
  ExpectTheStoreIsIntact();
}

}  // namespace
}  // namespace kvtier
