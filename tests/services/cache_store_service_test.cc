// CacheStore over gRPC on loopback: the real service and engine, driven by the C++ client
// and, for malformed input, by the raw generated stub.
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "cache_store/checksum.h"
#include "client/cache_store_client.h"
#include "proto/wire_convert.h"
#include "tests/services/test_prompts.h"
#include "tests/services/test_store_server.h"

namespace kvtier {
namespace {

using ::kvtier::testing::RandomBytes;
using ::kvtier::testing::TestStoreOptions;
using ::kvtier::testing::TestStoreServer;
using ::kvtier::testing::Tokens;

std::vector<std::span<uint8_t>> Split(std::vector<uint8_t>& buf, uint64_t block_bytes) {
  std::vector<std::span<uint8_t>> out;
  for (uint64_t off = 0; off < buf.size(); off += block_bytes) {
    out.push_back(std::span(buf).subspan(off, block_bytes));
  }
  return out;
}

class CacheStoreServiceTest : public ::testing::Test {
 protected:
  CacheStoreServiceTest() : server_(std::make_unique<TestStoreServer>()) {}

  CacheStoreClient Client(const std::string& tenant = "a") {
    return CacheStoreClient(
        ClientOptions{.target = server_->target(), .timeout = absl::Seconds(20), .tenant = tenant});
  }
  std::unique_ptr<v1::CacheStore::Stub> RawStub(int max_send = 16 << 20) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(max_send);
    return v1::CacheStore::NewStub(
        grpc::CreateCustomChannel(server_->target(), grpc::InsecureChannelCredentials(), args));
  }
  v1::PutHeader Header(const std::vector<uint32_t>& tokens, uint32_t first, uint32_t n) {
    v1::PutHeader h;
    *h.mutable_layout() = LayoutToProto(layout_);
    h.mutable_token_ids()->Add(tokens.begin(), tokens.end());
    h.set_first_block(first);
    h.set_num_blocks(n);
    return h;
  }
  // Sends a Put made of the given messages and returns its status.
  grpc::Status RawPut(const std::vector<v1::PutRequest>& messages, int max_send = 16 << 20) {
    auto stub = RawStub(max_send);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::PutResponse response;
    auto writer = stub->Put(&ctx, &response);
    for (const v1::PutRequest& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }
  // Stats once the server has let go of every reservation. The client may see a failed
  // Put's status before the server's reactor has run OnDone and freed the Put's slots, so
  // this waits (up to 5 s) for the reservations to return.
  BlockStoreStats StatsAfterReservationsReturn() {
    BlockStoreStats stats = server_->store().Stats();
    for (int i = 0; i < 500 && stats.t1_reserved_blocks != 0; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      stats = server_->store().Stats();
    }
    return stats;
  }
  void ExpectNothingStored() {
    EXPECT_EQ(server_->store().Stats().t1_used_blocks, 0u);  // never visible, at any time
    BlockStoreStats s = StatsAfterReservationsReturn();
    EXPECT_EQ(s.t1_used_blocks, 0u);
    EXPECT_EQ(s.t1_reserved_blocks, 0u);
  }

  KvLayout layout_ = Llama3_8BLayout();
  std::unique_ptr<TestStoreServer> server_;
};

TEST_F(CacheStoreServiceTest, MultiMiBBlocksRoundTripInBothOrders) {
  CacheStoreClient client = Client();
  const uint64_t bb = layout_.BlockBytes();
  std::vector<uint32_t> tokens = Tokens(6 * 16 + 5, 1);
  std::vector<uint8_t> payload = RandomBytes(6 * bb, 1);
  absl::StatusOr<PutReply> put = client.Put(layout_, tokens, 0, payload);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored_blocks, 6u);

  absl::StatusOr<LookupReply> lookup = client.Lookup(layout_, tokens);
  ASSERT_TRUE(lookup.ok()) << lookup.status();
  EXPECT_EQ(lookup->matched_blocks, 6u);
  EXPECT_EQ(lookup->total_blocks, 6u);
  EXPECT_EQ(lookup->block_bytes, bb);
  EXPECT_EQ(lookup->keys, put->keys);
  for (v1::Tier t : lookup->tiers) EXPECT_EQ(t, v1::TIER_HOST_DRAM);

  for (v1::FetchOrder order : {v1::FETCH_ORDER_BLOCK_MAJOR, v1::FETCH_ORDER_LAYER_MAJOR}) {
    std::vector<uint8_t> got(payload.size(), 0);
    std::vector<std::span<uint8_t>> out = Split(got, bb);
    std::vector<std::pair<uint32_t, uint64_t>> chunks;
    absl::StatusOr<FetchReply> f = client.Fetch(
        {.lease_id = lookup->lease_id}, out,
        {.order = order,
         .max_chunk_bytes = 256 << 10,
         .on_chunk = [&](uint32_t b, uint64_t off, uint64_t) { chunks.emplace_back(b, off); }});
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->bytes, payload.size());
    EXPECT_EQ(got, payload) << "order " << order;
    ASSERT_GE(chunks.size(), 6u);
    if (order == v1::FETCH_ORDER_LAYER_MAJOR) {
      // Layer 0 of every block (64 KiB each) arrives before anything of layer 1.
      for (uint32_t b = 0; b < 6; ++b) EXPECT_EQ(chunks[b], std::make_pair(b, uint64_t{0}));
    } else {
      EXPECT_EQ(chunks[1], std::make_pair(0u, uint64_t{256 << 10}));
    }
  }
  EXPECT_TRUE(client.Release(lookup->lease_id).ok());

  // Fetch by explicit keys, a subset, out of order.
  std::vector<uint8_t> two(2 * bb);
  std::vector<std::span<uint8_t>> out = Split(two, bb);
  absl::StatusOr<FetchReply> f = client.Fetch({.keys = {put->keys[4], put->keys[1]}}, out);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(std::memcmp(two.data(), payload.data() + 4 * bb, bb), 0);
  EXPECT_EQ(std::memcmp(two.data() + bb, payload.data() + bb, bb), 0);
}

TEST_F(CacheStoreServiceTest, PutBlocksSendsBlocksFromWhereverTheyAre) {
  const uint64_t bb = layout_.BlockBytes();
  const std::vector<uint32_t> tokens = Tokens(3 * 16, 4242);
  // Three blocks in three separate buffers, as pages of a pool would be.
  std::vector<std::vector<uint8_t>> pages;
  for (int i = 0; i < 3; ++i) pages.push_back(RandomBytes(bb, 50 + i));
  std::vector<std::span<const uint8_t>> blocks(pages.begin(), pages.end());
  CacheStoreClient client = Client();
  absl::StatusOr<PutReply> put = client.PutBlocks(layout_, tokens, 0, blocks);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored_blocks, 3u);
  std::vector<uint8_t> got(3 * bb);
  std::vector<std::span<uint8_t>> out = Split(got, bb);
  ASSERT_TRUE(client.Fetch({.keys = put->keys}, out).ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(std::memcmp(got.data() + i * bb, pages[i].data(), bb), 0) << "block " << i;
  }
  blocks[1] = std::span<const uint8_t>(pages[1]).first(bb - 1);
  absl::Status s = client.PutBlocks(layout_, tokens, 0, blocks).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("block 1 of the Put has"), std::string::npos) << s;
}

TEST_F(CacheStoreServiceTest, ConcurrentClientsShareAPrefixAndGetTheirOwnBytes) {
  const uint64_t bb = layout_.BlockBytes();
  std::vector<uint32_t> shared = Tokens(2 * 16, 1000);
  std::vector<uint8_t> shared_payload = RandomBytes(2 * bb, 1000);
  ASSERT_TRUE(Client().Put(layout_, shared, 0, shared_payload).ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      CacheStoreClient client = Client();
      for (int i = 0; i < 4; ++i) {
        std::vector<uint32_t> tokens = shared;
        std::vector<uint32_t> own = Tokens(16, 1 + t * 100 + i);
        tokens.insert(tokens.end(), own.begin(), own.end());
        std::vector<uint8_t> own_payload = RandomBytes(bb, 1 + t * 100 + i);
        if (!client.Put(layout_, tokens, 2, own_payload).ok()) ++failures;
        absl::StatusOr<LookupReply> l = client.Lookup(layout_, tokens);
        if (!l.ok() || l->matched_blocks != 3) {
          ++failures;
          continue;
        }
        std::vector<uint8_t> got(3 * bb);
        std::vector<std::span<uint8_t>> out = Split(got, bb);
        absl::StatusOr<FetchReply> f = client.Fetch({.lease_id = l->lease_id}, out);
        if (!f.ok() || std::memcmp(got.data(), shared_payload.data(), 2 * bb) != 0 ||
            std::memcmp(got.data() + 2 * bb, own_payload.data(), bb) != 0) {
          ++failures;
        }
        if (!client.Release(l->lease_id).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(server_->store().Stats().t1_used_blocks, 2u + 6 * 4);
}

// A Lookup returns the matched keys one per field, or packed into one field when asked;
// both list the same keys, in prompt order.
TEST_F(CacheStoreServiceTest, LookupKeysComeSingleOrPacked) {
  CacheStoreClient client({.target = server_->target()});
  std::vector<uint32_t> tokens = Tokens(3 * 16 + 5, 11);
  std::vector<uint8_t> payload(3 * layout_.BlockBytes(), 0x3c);
  absl::StatusOr<PutReply> put = client.Put(layout_, tokens, 0, payload);
  ASSERT_TRUE(put.ok()) << put.status();
  auto stub = RawStub();
  v1::LookupRequest request;
  *request.mutable_layout() = LayoutToProto(layout_);
  request.mutable_token_ids()->Add(tokens.begin(), tokens.end());
  request.set_no_lease(true);
  v1::LookupResponse single, packed;
  grpc::ClientContext ctx1, ctx2;
  ASSERT_TRUE(stub->Lookup(&ctx1, request, &single).ok());
  request.set_packed_keys(true);
  ASSERT_TRUE(stub->Lookup(&ctx2, request, &packed).ok());
  ASSERT_EQ(single.block_keys_size(), 3);
  EXPECT_TRUE(single.packed_block_keys().empty());
  EXPECT_EQ(packed.block_keys_size(), 0);
  ASSERT_EQ(packed.packed_block_keys().size(), 3 * BlockKey::kSize);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(single.block_keys(i), std::string(put->keys[i].AsBytes()));
    EXPECT_EQ(packed.packed_block_keys().substr(i * BlockKey::kSize, BlockKey::kSize),
              single.block_keys(i));
  }
  absl::StatusOr<LookupReply> reply = client.Lookup(layout_, tokens, {.lease = false});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->keys, put->keys);
}

TEST_F(CacheStoreServiceTest, MalformedLayoutsAreRejectedByName) {
  auto stub = RawStub();
  v1::LookupRequest request;
  *request.mutable_layout() = LayoutToProto(layout_);
  request.mutable_layout()->set_num_layers(0);
  request.add_token_ids(1);
  v1::LookupResponse response;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Lookup(&ctx, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("num_layers"), std::string::npos) << s.error_message();

  request.mutable_layout()->set_num_layers(32);
  request.mutable_layout()->set_dtype(v1::DTYPE_UNSPECIFIED);
  grpc::ClientContext ctx2;
  s = stub->Lookup(&ctx2, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("dtype"), std::string::npos);

  grpc::ClientContext ctx3;
  v1::LookupRequest empty;
  s = stub->Lookup(&ctx3, empty, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CacheStoreServiceTest, BadPutStreamsChangeNothing) {
  const uint64_t bb = layout_.BlockBytes();
  std::vector<uint32_t> tokens = Tokens(32, 1);
  std::vector<uint8_t> payload = RandomBytes(2 * bb, 1);
  auto data = [&](size_t from, size_t n) {
    v1::PutRequest m;
    m.set_data(payload.data() + from, n);
    return m;
  };
  auto header = [&](v1::PutHeader h) {
    v1::PutRequest m;
    *m.mutable_header() = std::move(h);
    return m;
  };
  struct Case {
    const char* name;
    std::vector<v1::PutRequest> messages;
    grpc::StatusCode code;
    const char* message;
  };
  v1::PutHeader with_sums = Header(tokens, 0, 2);
  for (int b = 0; b < 2; ++b) {  // block 0's checksums for both: wrong for block 1
    for (uint32_t l = 0; l < layout_.num_layers; ++l) {
      with_sums.add_layer_checksums(
          RangeChecksum(payload.data() + l * layout_.LayerBytes(), layout_.LayerBytes()));
    }
  }
  v1::PutHeader zero_dim = Header(tokens, 0, 2);
  zero_dim.mutable_layout()->set_head_dim(0);
  std::vector<Case> cases = {
      {"stream ends early",
       {header(Header(tokens, 0, 2)), data(0, bb), data(bb, bb / 2)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "ended before carried block 1 was complete"},
      {"payload larger than announced",
       {header(Header(tokens, 0, 1)), data(0, bb), data(bb, 10)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "runs past"},
      {"checksum mismatch",
       {header(with_sums), data(0, bb), data(bb, bb)},
       grpc::StatusCode::DATA_LOSS,
       "checksum mismatch"},
      {"zero layout field",
       {header(zero_dim), data(0, bb)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "head_dim"},
      {"blocks beyond the tokens",
       {header(Header(tokens, 1, 2)), data(0, bb)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "hold only 2 full blocks"},
      {"data before header", {data(0, 10)}, grpc::StatusCode::INVALID_ARGUMENT, "PutHeader"},
      {"empty stream", {}, grpc::StatusCode::INVALID_ARGUMENT, "before its PutHeader"},
      {"two headers",
       {header(Header(tokens, 0, 1)), header(Header(tokens, 0, 1))},
       grpc::StatusCode::INVALID_ARGUMENT,
       "exactly one PutHeader"},
  };
  for (const Case& c : cases) {
    grpc::Status s = RawPut(c.messages);
    EXPECT_EQ(s.error_code(), c.code) << c.name << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.message), std::string::npos)
        << c.name << ": " << s.error_message();
    ExpectNothingStored();
  }
}

TEST_F(CacheStoreServiceTest, OversizedMessageIsRejected) {
  std::vector<uint32_t> tokens = Tokens(16, 1);
  v1::PutRequest h;
  *h.mutable_header() = Header(tokens, 0, 1);
  v1::PutRequest big;
  big.set_data(std::string(17 << 20, 'x'));  // over the server's 16 MiB message limit
  grpc::Status s = RawPut({h, big}, 32 << 20);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  ExpectNothingStored();
}

TEST_F(CacheStoreServiceTest, FetchOfUnknownOrMalformedKeysAndBadRequests) {
  auto stub = RawStub();
  auto fetch = [&](const v1::FetchRequest& request) {
    grpc::ClientContext ctx;
    auto reader = stub->Fetch(&ctx, request);
    v1::FetchResponse m;
    while (reader->Read(&m)) {
    }
    return reader->Finish();
  };
  v1::FetchRequest unknown;
  unknown.add_block_keys(std::string(32, '\x07'));
  grpc::Status s = fetch(unknown);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("not cached"), std::string::npos);

  v1::FetchRequest malformed;
  malformed.add_block_keys("short");
  s = fetch(malformed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("block_keys[0]"), std::string::npos);

  v1::FetchRequest both = unknown;
  both.set_lease_id(5);
  EXPECT_EQ(fetch(both).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(fetch(v1::FetchRequest()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::FetchRequest unknown_lease;
  unknown_lease.set_lease_id(12345);
  EXPECT_EQ(fetch(unknown_lease).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CacheStoreServiceTest, ExpiredLeaseIsReportedAsExpired) {
  CacheStoreClient client = Client();
  std::vector<uint32_t> tokens = Tokens(16, 1);
  ASSERT_TRUE(client.Put(layout_, tokens, 0, RandomBytes(layout_.BlockBytes(), 1)).ok());
  absl::StatusOr<LookupReply> lookup =
      client.Lookup(layout_, tokens, {.lease_ttl = absl::Seconds(5)});
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ(lookup->lease_ttl, absl::Seconds(5));
  server_->clock().Advance(absl::Seconds(6));
  std::vector<uint8_t> buf(layout_.BlockBytes());
  std::vector<std::span<uint8_t>> out = Split(buf, layout_.BlockBytes());
  absl::StatusOr<FetchReply> f = client.Fetch({.lease_id = lookup->lease_id}, out);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(f.status().message().find("expired"), std::string::npos) << f.status();
}

TEST_F(CacheStoreServiceTest, TenantsAreIsolatedOverTheWire) {
  CacheStoreClient a = Client("team-a");
  CacheStoreClient b = Client("team-b");
  std::vector<uint32_t> tokens = Tokens(32, 1);
  absl::StatusOr<PutReply> put =
      a.Put(layout_, tokens, 0, RandomBytes(2 * layout_.BlockBytes(), 1));
  ASSERT_TRUE(put.ok());
  absl::StatusOr<LookupReply> lb = b.Lookup(layout_, tokens);
  ASSERT_TRUE(lb.ok());
  EXPECT_EQ(lb->matched_blocks, 0u);
  std::vector<uint8_t> buf(2 * layout_.BlockBytes());
  std::vector<std::span<uint8_t>> out = Split(buf, layout_.BlockBytes());
  EXPECT_EQ(b.Fetch({.keys = put->keys}, out).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(b.Delete(put->keys).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(b.Pin(put->keys).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<LookupReply> la = a.Lookup(layout_, tokens);
  ASSERT_TRUE(la.ok());
  EXPECT_EQ(la->matched_blocks, 2u);
  EXPECT_EQ(b.Fetch({.lease_id = la->lease_id}, out).status().code(), absl::StatusCode::kNotFound);
  CacheStoreClient bad = Client("bad tenant!");
  EXPECT_EQ(bad.Lookup(layout_, tokens).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CacheStoreServiceTest, PinUnpinDeleteOverTheWire) {
  CacheStoreClient client = Client();
  std::vector<uint32_t> tokens = Tokens(16, 1);
  absl::StatusOr<PutReply> put =
      client.Put(layout_, tokens, 0, RandomBytes(layout_.BlockBytes(), 1));
  ASSERT_TRUE(put.ok());
  absl::StatusOr<absl::Duration> ttl = client.Pin(put->keys, absl::Minutes(1));
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(*ttl, absl::Minutes(1));
  absl::StatusOr<v1::StatsResponse> stats = client.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pinned_blocks(), 1u);
  EXPECT_EQ(*client.Unpin(put->keys), 1u);
  EXPECT_EQ(*client.Delete(put->keys), 1u);
  EXPECT_EQ(client.Lookup(layout_, tokens)->matched_blocks, 0u);
}

TEST_F(CacheStoreServiceTest, WatchEventsStreamsStoresAndRemovals) {
  CacheStoreClient client = Client();
  std::vector<v1::BlockEvent> events;
  absl::Notification live;
  std::thread watcher([&] {
    absl::Status s = client.WatchEvents(
        [&](const v1::WatchEventsResponse& m) {
          if (!live.HasBeenNotified()) live.Notify();
          events.insert(events.end(), m.events().begin(), m.events().end());
          return events.size() < 3;
        },
        absl::Seconds(20));
    EXPECT_TRUE(s.ok()) << s;
  });
  ASSERT_TRUE(live.WaitForNotificationWithTimeout(absl::Seconds(10)));
  std::vector<uint32_t> tokens = Tokens(32, 1);
  absl::StatusOr<PutReply> put =
      client.Put(layout_, tokens, 0, RandomBytes(2 * layout_.BlockBytes(), 1));
  ASSERT_TRUE(put.ok());
  ASSERT_TRUE(client.Delete(std::span(put->keys).first(1)).ok());
  watcher.join();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type(), v1::BlockEvent::TYPE_STORED);
  EXPECT_EQ(events[0].key(), std::string(put->keys[0].AsBytes()));
  EXPECT_TRUE(events[0].parent_key().empty());
  EXPECT_EQ(events[1].parent_key(), events[0].key());
  EXPECT_EQ(events[2].type(), v1::BlockEvent::TYPE_REMOVED);
  EXPECT_EQ(events[2].reason(), v1::BlockEvent::REASON_DELETED);
  EXPECT_LT(events[0].seq(), events[1].seq());
  EXPECT_LT(events[1].seq(), events[2].seq());
  EXPECT_EQ(events[0].layout_fingerprint(), layout_.Fingerprint());
}

TEST_F(CacheStoreServiceTest, AStalledPutPastItsDeadlineLeavesNothingBehind) {
  auto stub = RawStub();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  v1::PutResponse response;
  auto writer = stub->Put(&ctx, &response);
  v1::PutRequest h;
  std::vector<uint32_t> tokens = Tokens(32, 1);
  *h.mutable_header() = Header(tokens, 0, 2);
  ASSERT_TRUE(writer->Write(h));
  v1::PutRequest d;
  d.set_data(std::string(1000, 'x'));
  writer->Write(d);
  absl::SleepFor(absl::Milliseconds(600));  // the client stalls past its deadline
  grpc::Status s = writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server abandons the Put: slots return, nothing is visible.
  BlockStoreStats stats = StatsAfterReservationsReturn();
  EXPECT_EQ(stats.t1_reserved_blocks, 0u);
  EXPECT_EQ(stats.t1_used_blocks, 0u);
  EXPECT_EQ(stats.put_failures, 1u);
}

TEST_F(CacheStoreServiceTest, HealthReportsServing) {
  CacheStoreClient client = Client();
  absl::StatusOr<bool> healthy = client.Healthy();
  ASSERT_TRUE(healthy.ok()) << healthy.status();
  EXPECT_TRUE(*healthy);
}

TEST(CacheStoreAuthTest, BearerTokensDecideTheTenant) {
  const std::string path = ::testing::TempDir() + "/kvtier_tokens";
  std::ofstream(path) << "# token tenant\nsecret-a team-a\nsecret-b team-b\n";
  TestStoreServer server(TestStoreOptions{.auth_token_file = path});
  const KvLayout layout = Llama3_8BLayout();
  std::vector<uint32_t> tokens = Tokens(16, 1);
  std::vector<uint8_t> payload = RandomBytes(layout.BlockBytes(), 1);

  CacheStoreClient anonymous({.target = server.target(), .tenant = "team-a"});
  EXPECT_EQ(anonymous.Lookup(layout, tokens).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(anonymous.Put(layout, tokens, 0, payload).status().code(),
            absl::StatusCode::kUnauthenticated);
  CacheStoreClient wrong({.target = server.target(), .auth_token = "guess"});
  EXPECT_EQ(wrong.Stats().status().code(), absl::StatusCode::kUnauthenticated);

  // The tenant metadata cannot override the token's tenant.
  CacheStoreClient a({.target = server.target(), .tenant = "team-b", .auth_token = "secret-a"});
  CacheStoreClient b({.target = server.target(), .auth_token = "secret-b"});
  ASSERT_TRUE(a.Put(layout, tokens, 0, payload).ok());
  EXPECT_EQ(a.Lookup(layout, tokens)->matched_blocks, 1u);
  EXPECT_EQ(b.Lookup(layout, tokens)->matched_blocks, 0u);
}

}  // namespace
}  // namespace kvtier
