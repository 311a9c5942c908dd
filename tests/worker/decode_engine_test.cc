// DecodeEngine against a real in-process kvtier-store: prefixes reused from the worker's own
// pages and restored from the store decode exactly like recomputed ones; multi-turn reuse
// with exact hit counts; a small pool; a store that is gone; tenant isolation.
#include "worker/decode_engine.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "tests/services/test_store_server.h"

namespace kvtier::worker {
namespace {

constexpr uint32_t kTpb = 16;

std::shared_ptr<const LlamaWeights> Weights() {
  static auto* w = new std::shared_ptr<const LlamaWeights>(
      std::make_shared<const LlamaWeights>(*LlamaWeights::FromSeed(TinyLlamaConfig(), 3)));
  return *w;
}

std::vector<uint32_t> Prompt(uint32_t n, uint32_t salt) {
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = (i * 31 + salt * 7 + 1) % 512;
  return p;
}

std::shared_ptr<CacheStoreClient> Client(const std::string& target, const std::string& tenant,
                                         const std::string& shm_socket = "") {
  ClientOptions o;
  o.target = target;
  o.tenant = tenant;
  o.timeout = absl::Seconds(5);
  o.shm_socket = shm_socket;
  return std::make_shared<CacheStoreClient>(o);
}

std::unique_ptr<DecodeEngine> Engine(std::shared_ptr<CacheStoreClient> store, uint32_t pages = 64,
                                     const std::string& tenant = "t1") {
  absl::StatusOr<std::unique_ptr<DecodeEngine>> e =
      DecodeEngine::Create(Weights(), std::move(store), {.pages = pages, .tenant = tenant});
  EXPECT_TRUE(e.ok()) << e.status();
  return *std::move(e);
}

struct Generation {
  DecodeEngine::Opened opened;
  std::vector<uint32_t> tokens;  // generated
};

Generation Generate(DecodeEngine& engine, const std::vector<uint32_t>& prompt, int n,
                    bool close = true) {
  Generation g;
  absl::StatusOr<DecodeEngine::Opened> opened = engine.Open(prompt);
  EXPECT_TRUE(opened.ok()) << opened.status();
  g.opened = *opened;
  g.tokens.push_back(opened->next_token);
  for (int i = 1; i < n; ++i) {
    const uint64_t id = opened->id;
    absl::StatusOr<std::vector<uint32_t>> next = engine.Step({&id, 1});
    EXPECT_TRUE(next.ok()) << next.status();
    g.tokens.push_back((*next)[0]);
  }
  if (close) {
    EXPECT_TRUE(engine.Close(opened->id).ok());
  }
  return g;
}

testing::TestStoreServer& Store() {
  static auto* store = new testing::TestStoreServer(
      {.t1_bytes = uint64_t{64} << 20, .min_slot_bytes = TinyLlamaConfig().Layout().BlockBytes()});
  return *store;
}

TEST(DecodeEngineTest, ReusesItsOwnPagesAndDecodesIdentically) {
  auto engine = Engine(nullptr);
  const std::vector<uint32_t> p = Prompt(70, 1);
  const Generation cold = Generate(*engine, p, 8);
  EXPECT_EQ(cold.opened.computed_tokens, 70u);
  const Generation warm = Generate(*engine, p, 8);
  // (70 - 1) / 16 = 4 full blocks are reused; 6 tokens run.
  EXPECT_EQ(warm.opened.local_tokens, 64u);
  EXPECT_EQ(warm.opened.computed_tokens, 6u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(warm.opened.logits, cold.opened.logits);
}

TEST(DecodeEngineTest, ARestartedWorkerRestoresThePrefixFromTheStore) {
  const std::vector<uint32_t> p = Prompt(100, 2);
  Generation cold;
  {
    auto engine = Engine(Client(Store().target(), "t1"));
    cold = Generate(*engine, p, 10);
    engine->FlushOffloads();
    // 100 prompt + 9 decoded tokens have K/V: 6 full blocks offloaded.
    EXPECT_EQ(engine->stats().offload.blocks, 6u);
  }
  auto engine = Engine(Client(Store().target(), "t1"));  // empty pool
  const Generation warm = Generate(*engine, p, 10);
  EXPECT_EQ(warm.opened.local_tokens, 0u);
  EXPECT_EQ(warm.opened.store_tokens, 96u);  // (100 - 1) / 16 = 6 blocks
  EXPECT_EQ(warm.opened.computed_tokens, 4u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(warm.opened.logits, cold.opened.logits);
  EXPECT_EQ(engine->stats().restored_bytes, 6 * engine->layout().BlockBytes());

  // The prompt plus a continuation: the generated blocks were offloaded too.
  std::vector<uint32_t> longer = p;
  longer.insert(longer.end(), cold.tokens.begin(), cold.tokens.end() - 1);  // 109 tokens
  longer.push_back(5);
  auto fresh = Engine(Client(Store().target(), "t1"));
  const Generation cont = Generate(*fresh, longer, 4);
  EXPECT_EQ(cont.opened.store_tokens, 96u);  // blocks 0..5 (block 6 was never full)
  auto recompute = Engine(nullptr);
  const Generation want = Generate(*recompute, longer, 4);
  EXPECT_EQ(cont.tokens, want.tokens);
}

TEST(DecodeEngineTest, MultiTurnHitCountsAreExact) {
  auto engine = Engine(Client(Store().target(), "multi"), 64, "multi");
  std::vector<uint32_t> conversation = Prompt(40, 3);
  uint32_t expected_local = 0;
  for (int turn = 0; turn < 4; ++turn) {
    const Generation g = Generate(*engine, conversation, 6);
    EXPECT_EQ(g.opened.local_tokens, expected_local) << "turn " << turn;
    EXPECT_EQ(g.opened.store_tokens, 0u) << "the worker's own pages come first";
    // Next turn: everything with K/V (the prompt and 5 decoded tokens), the last decoded
    // token, and a user message of 13 tokens.
    conversation.insert(conversation.end(), g.tokens.begin(), g.tokens.end());
    const std::vector<uint32_t> user = Prompt(13, 10 + turn);
    conversation.insert(conversation.end(), user.begin(), user.end());
    // Reusable next time: full blocks of the K/V this turn computed.
    const uint32_t with_kv = static_cast<uint32_t>(conversation.size() - 13 - 1);
    expected_local =
        std::min(with_kv / kTpb, static_cast<uint32_t>(conversation.size() - 1) / kTpb) * kTpb;
  }
}

TEST(DecodeEngineTest, UnderPagePressureResultsStayIdentical) {
  // 8 pages: each prompt needs 5; three prompts rotate through the pool.
  auto small = Engine(Client(Store().target(), "pressure"), 8, "pressure");
  auto roomy = Engine(nullptr, 256);
  for (int round = 0; round < 3; ++round) {
    for (uint32_t s = 0; s < 3; ++s) {
      const std::vector<uint32_t> p = Prompt(70, 20 + s);
      // No flush between prompts: a prompt may need pages whose offload is still running.
      EXPECT_EQ(Generate(*small, p, 5).tokens, Generate(*roomy, p, 5).tokens);
    }
  }
  const DecodeEngine::Stats s = small->stats();
  EXPECT_GT(s.pages.evictions, 0u);
  EXPECT_GT(s.store_tokens, 0u) << "evicted blocks come back from the store";
  EXPECT_EQ(s.offload.dropped_blocks, 0u);
}

TEST(DecodeEngineTest, IdleSequencesSwapOutUnderPressureAndDecodeIdentically) {
  // 10 pages; three open sequences of 4-5 pages each do not fit at once. Decoding them in
  // turns swaps the idle ones out (blocks published and offloaded) and back in.
  for (bool with_store : {true, false}) {
    SCOPED_TRACE(with_store ? "with a store" : "without a store");
    auto small = Engine(with_store ? Client(Store().target(), "swap") : nullptr, 10, "swap");
    auto roomy = Engine(nullptr, 256);
    std::vector<uint64_t> s_ids, r_ids;
    std::vector<std::vector<uint32_t>> s_tokens(3), r_tokens(3);
    for (uint32_t i = 0; i < 3; ++i) {
      const std::vector<uint32_t> p = Prompt(50 + 5 * i, 60 + i);
      absl::StatusOr<DecodeEngine::Opened> a = small->Open(p);
      absl::StatusOr<DecodeEngine::Opened> b = roomy->Open(p);
      ASSERT_TRUE(a.ok()) << a.status();
      ASSERT_TRUE(b.ok());
      EXPECT_EQ(a->next_token, b->next_token);
      s_ids.push_back(a->id);
      r_ids.push_back(b->id);
    }
    for (int step = 0; step < 20; ++step) {
      const uint32_t i = step % 3;
      absl::StatusOr<std::vector<uint32_t>> a = small->Step({&s_ids[i], 1});
      absl::StatusOr<std::vector<uint32_t>> b = roomy->Step({&r_ids[i], 1});
      ASSERT_TRUE(a.ok()) << "step " << step << ": " << a.status();
      ASSERT_TRUE(b.ok());
      s_tokens[i].push_back((*a)[0]);
      r_tokens[i].push_back((*b)[0]);
    }
    EXPECT_EQ(s_tokens, r_tokens);
    const DecodeEngine::Stats stats = small->stats();
    EXPECT_GT(stats.swapped_out, 0u);
    EXPECT_GT(stats.swapped_in, 0u);
    for (uint32_t i = 0; i < 3; ++i) EXPECT_TRUE(small->Close(s_ids[i]).ok());
  }
}

TEST(DecodeEngineTest, APromptWaitsForPendingOffloadsInsteadOfFailing) {
  // 6 pages; each prompt needs 5. Right after a Close, 4 of them wait for their offload.
  auto engine = Engine(Client(Store().target(), "waits"), 6, "waits");
  for (uint32_t s = 0; s < 4; ++s) {
    absl::StatusOr<DecodeEngine::Opened> opened = engine->Open(Prompt(70, 40 + s));
    ASSERT_TRUE(opened.ok()) << "prompt " << s << ": " << opened.status();
    ASSERT_TRUE(engine->Close(opened->id).ok());
  }
  engine->FlushOffloads();
  EXPECT_EQ(engine->stats().offload.blocks, 16u);
  EXPECT_EQ(engine->stats().offload.dropped_blocks, 0u);
}

TEST(DecodeEngineTest, AStoreThatIsGoneCostsARecomputeNotAnError) {
  const std::vector<uint32_t> p = Prompt(60, 4);
  auto reference = Engine(nullptr);
  const Generation want = Generate(*reference, p, 6);
  ClientOptions o;
  o.target = "127.0.0.1:1";  // nothing listens
  o.timeout = absl::Milliseconds(300);
  auto engine = Engine(std::make_shared<CacheStoreClient>(o));
  const Generation got = Generate(*engine, p, 6);
  EXPECT_EQ(got.tokens, want.tokens);
  engine->FlushOffloads();
  const DecodeEngine::Stats s = engine->stats();
  EXPECT_EQ(s.restore_failures, 1u);
  EXPECT_EQ(s.offload.dropped_blocks, 4u);  // (60 + 5) / 16 blocks, deliberately dropped
  // Dropped blocks stay usable locally.
  EXPECT_EQ(Generate(*engine, p, 6).opened.local_tokens, 48u);
}

TEST(DecodeEngineTest, AStoreSlowerThanTheDeadlineCostsARecompute) {
  // A port that accepts connections and never answers: every call runs into its deadline.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  ClientOptions o;
  o.target = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  o.timeout = absl::Milliseconds(300);
  const std::vector<uint32_t> p = Prompt(60, 8);
  auto reference = Engine(nullptr);
  const Generation want = Generate(*reference, p, 5);
  auto engine = Engine(std::make_shared<CacheStoreClient>(o));
  const auto start = absl::Now();
  const Generation got = Generate(*engine, p, 5);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "bounded by the deadline";
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.opened.computed_tokens, 60u);
  engine->FlushOffloads();
  EXPECT_EQ(engine->stats().restore_failures, 1u);
  EXPECT_EQ(engine->stats().offload.dropped_blocks, 4u);
  ::close(listener);
}

TEST(DecodeEngineTest, ABlockThatFailsItsChecksumCostsARecompute) {
  const std::vector<uint32_t> p = Prompt(80, 6);
  Generation cold;
  {
    auto engine = Engine(Client(Store().target(), "bitflip"), 64, "bitflip");
    cold = Generate(*engine, p, 4);
    engine->FlushOffloads();
  }
  // Flip one bit of block 2 in the store's memory, as a memory fault would.
  const KvLayout layout = TinyLlamaConfig().Layout();
  const std::vector<BlockKey> keys =
      ChainBlockKeys(NamespaceKey("bitflip", layout.Fingerprint(), ""), p, kTpb);
  {
    auto read = Store().store().ReadBlocks("bitflip", std::span(keys).subspan(2, 1));
    ASSERT_TRUE(read.ok()) << read.status();
    const_cast<uint8_t*>((*read)->blocks()[0].data)[100] ^= 0x01;
  }
  auto engine = Engine(Client(Store().target(), "bitflip"), 64, "bitflip");
  const Generation got = Generate(*engine, p, 4);
  EXPECT_EQ(got.opened.store_tokens, 0u) << "the Fetch fails as a whole";
  EXPECT_EQ(got.opened.computed_tokens, 80u);
  EXPECT_EQ(got.tokens, cold.tokens);
  EXPECT_EQ(engine->stats().restore_failures, 1u);
}

TEST(DecodeEngineTest, AFullStoreDropsOffloadsAndLosesNothingLocally) {
  // A store with room for two blocks: a 5-block offload cannot fit.
  testing::TestStoreServer tiny({.t1_bytes = 2 * TinyLlamaConfig().Layout().BlockBytes(),
                                 .min_slot_bytes = TinyLlamaConfig().Layout().BlockBytes()});
  auto engine = Engine(Client(tiny.target(), "full"), 64, "full");
  const std::vector<uint32_t> p = Prompt(85, 7);
  const Generation first = Generate(*engine, p, 4);
  engine->FlushOffloads();
  EXPECT_EQ(engine->stats().offload.dropped_blocks, 5u);
  EXPECT_EQ(engine->stats().pages.unsafe, 0u) << "dropped blocks may be evicted";
  const Generation again = Generate(*engine, p, 4);
  EXPECT_EQ(again.opened.local_tokens, 80u);
  EXPECT_EQ(again.tokens, first.tokens);
}

TEST(DecodeEngineTest, TenantsNeverShareBlocks) {
  const std::vector<uint32_t> p = Prompt(50, 5);
  {
    auto a = Engine(Client(Store().target(), "tenant-a"), 64, "tenant-a");
    Generate(*a, p, 3);
    a->FlushOffloads();
  }
  auto b = Engine(Client(Store().target(), "tenant-b"), 64, "tenant-b");
  EXPECT_EQ(Generate(*b, p, 3).opened.store_tokens, 0u);
  auto a2 = Engine(Client(Store().target(), "tenant-a"), 64, "tenant-a");
  EXPECT_EQ(Generate(*a2, p, 3).opened.store_tokens, 48u);
}

// Same-node: the store copies restored blocks straight into the worker's pages (a
// shared-memory region), and offloads straight out of them, with the same result as over
// the socket.
TEST(DecodeEngineTest, SameNodeRestoresAndOffloadsThroughThePagesIdentically) {
  testing::TestStoreServer store(
      {.min_slot_bytes = TinyLlamaConfig().Layout().BlockBytes(), .same_node = true});
  const DecodeEngineOptions options{.pages = 64, .tenant = "t1", .same_node = true};
  const std::vector<uint32_t> p = Prompt(100, 21);
  Generation cold;
  {
    auto engine =
        *DecodeEngine::Create(Weights(), Client(store.target(), "t1", store.shm_socket()), options);
    cold = Generate(*engine, p, 6);
    engine->FlushOffloads();
    EXPECT_EQ(engine->stats().offload.shm_blocks, 6u);  // 100 + 5 tokens: 6 full blocks
    EXPECT_EQ(engine->stats().offload.dropped_blocks, 0u);
  }
  auto engine =
      *DecodeEngine::Create(Weights(), Client(store.target(), "t1", store.shm_socket()), options);
  const Generation warm = Generate(*engine, p, 6);
  EXPECT_EQ(warm.opened.store_tokens, 96u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(warm.opened.logits, cold.opened.logits);
  EXPECT_EQ(engine->stats().shm_restores, 1u);
  EXPECT_EQ(engine->stats().restore_failures, 0u);
}

// A worker set up for same-node delivery whose store does not offer it (no --shm_socket,
// or another node's) restores and offloads over the socket instead, and stops asking.
TEST(DecodeEngineTest, AStoreWithoutSharedMemoryIsAskedOverTheSocket) {
  const DecodeEngineOptions options{.pages = 64, .tenant = "t1", .same_node = true};
  const std::vector<uint32_t> p = Prompt(100, 22);
  const std::string no_socket = "/nonexistent/kvtier-shm.sock";
  Generation cold;
  {
    auto engine =
        *DecodeEngine::Create(Weights(), Client(Store().target(), "t1", no_socket), options);
    cold = Generate(*engine, p, 6);
    engine->FlushOffloads();
    EXPECT_EQ(engine->stats().offload.shm_blocks, 0u);
    EXPECT_EQ(engine->stats().offload.dropped_blocks, 0u);
  }
  auto engine =
      *DecodeEngine::Create(Weights(), Client(Store().target(), "t1", no_socket), options);
  const Generation warm = Generate(*engine, p, 6);
  EXPECT_EQ(warm.opened.store_tokens, 96u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(engine->stats().shm_restores, 0u);
  EXPECT_EQ(engine->stats().restore_failures, 0u);
}

TEST(DecodeEngineTest, BadRequestsAreErrors) {
  auto engine = Engine(nullptr);
  EXPECT_EQ(engine->Open({}).status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<uint32_t> bad{1, 2, 512};
  absl::Status s = engine->Open(bad).status();
  EXPECT_NE(s.message().find("prompt token 2 (512)"), std::string::npos) << s;
  const uint64_t missing = 99;
  EXPECT_EQ(engine->Step({&missing, 1}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine->Close(99).code(), absl::StatusCode::kNotFound);
  auto opened = engine->Open(Prompt(5, 1));
  const uint64_t twice[2] = {opened->id, opened->id};
  EXPECT_EQ(engine->Step(twice).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvtier::worker
