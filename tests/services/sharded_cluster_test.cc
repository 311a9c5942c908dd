// One cache over several real kvtier-store processes (client/sharded_client.h): blocks
// placed and replicated across shards, read back across them in layer-major order, and
// shards that die, stall or restart costing misses, never errors.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_join.h"
#include "bench/replay.h"
#include "bench/trace.h"
#include "client/cache_store_client.h"
#include "client/shard_endpoints.h"
#include "client/shard_placement.h"
#include "client/sharded_client.h"
#include "tests/services/store_process.h"

namespace kvtier {
namespace {

using ::kvtier::testing::StoreProcess;

KvLayout Layout() {
  return {.model_id = "shard-test",
          .num_layers = 4,
          .num_kv_heads = 2,
          .head_dim = 16,
          .dtype = DType::kBf16,
          .tokens_per_block = 4};
}

std::vector<uint32_t> Prompt(uint32_t blocks, uint32_t seed) {
  std::vector<uint32_t> t(blocks * Layout().tokens_per_block);
  for (size_t i = 0; i < t.size(); ++i) t[i] = seed * 100003u + static_cast<uint32_t>(i);
  return t;
}

std::vector<uint8_t> Payload(uint32_t blocks, uint32_t seed) {
  std::vector<uint8_t> p(uint64_t{blocks} * Layout().BlockBytes());
  std::mt19937 rng(seed);
  for (uint8_t& b : p) b = static_cast<uint8_t>(rng());
  return p;
}

// N store processes on loopback.
class Cluster {
 public:
  absl::Status Start(int n, const std::vector<std::string>& flags) {
    return Start(n, [&](int) { return flags; });
  }
  absl::Status Start(int n, const std::function<std::vector<std::string>(int)>& flags) {
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> f = flags(i);
      f.push_back(absl::StrCat("--shard_id=store-", i));
      absl::StatusOr<std::unique_ptr<StoreProcess>> s = StoreProcess::Start(f);
      if (!s.ok()) return s.status();
      ports_.push_back((*s)->grpc_port());
      stores_.push_back(*std::move(s));
      flags_.push_back(f);
    }
    return absl::OkStatus();
  }
  // Starts store i again on its port, with its flags (its T2 directory, its name).
  absl::Status Restart(int i) {
    std::vector<std::string> f = flags_[i];
    f.push_back(absl::StrCat("--listen=127.0.0.1:", ports_[i]));
    stores_[i].reset();
    absl::StatusOr<std::unique_ptr<StoreProcess>> s = StoreProcess::Start(f);
    if (!s.ok()) return s.status();
    stores_[i] = *std::move(s);
    return absl::OkStatus();
  }
  std::string Target(int i) const { return absl::StrCat("127.0.0.1:", ports_[i]); }
  std::string Targets() const {
    std::vector<std::string> t;
    for (size_t i = 0; i < ports_.size(); ++i) t.push_back(Target(static_cast<int>(i)));
    return absl::StrJoin(t, ",");
  }
  StoreProcess& store(int i) { return *stores_[i]; }
  v1::StatsResponse Stats(int i) {
    CacheStoreClient c({.target = Target(i)});
    absl::StatusOr<v1::StatsResponse> s = c.Stats();
    return s.ok() ? *s : v1::StatsResponse();
  }

 private:
  std::vector<std::unique_ptr<StoreProcess>> stores_;
  std::vector<std::vector<std::string>> flags_;
  std::vector<int> ports_;
};

std::unique_ptr<ShardedClient> Connect(const Cluster& cluster, uint32_t replication,
                                       absl::Duration timeout = absl::Seconds(5)) {
  ShardedClientOptions o;
  o.targets = cluster.Targets();
  o.shard.tenant = "shard-tenant";
  o.shard.timeout = timeout;
  o.replication = replication;
  o.placement_span = 4;  // the test prompts' blocks spread over every shard
  o.resolve_interval = absl::Milliseconds(500);
  o.min_backoff = absl::Milliseconds(100);
  o.max_backoff = absl::Milliseconds(400);
  absl::StatusOr<std::unique_ptr<ShardedClient>> c = ShardedClient::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

uint64_t T1Blocks(const v1::StatsResponse& s) {
  for (const v1::TierStats& t : s.tiers()) {
    if (t.tier() == v1::TIER_HOST_DRAM) return t.used_blocks();
  }
  return 0;
}

TEST(ShardPlacementTest, RankingIsATotalOrderThatDependsOnTheKey) {
  const std::vector<uint64_t> shards = {ShardNameHash("a"), ShardNameHash("b"), ShardNameHash("c")};
  const std::vector<BlockKey> keys = RoutingKeys(Layout(), "", Prompt(300, 1), 300);
  std::map<uint32_t, int> first;
  for (const BlockKey& k : keys) {
    std::vector<uint32_t> r = RankShards(shards, k);
    ASSERT_EQ(std::set<uint32_t>(r.begin(), r.end()).size(), 3u);
    EXPECT_EQ(r, RankShards(shards, k));  // deterministic
    ++first[r[0]];
  }
  // Each shard owns about a third.
  for (const auto& [s, n] : first) EXPECT_GT(n, 60) << "shard " << s;
  // The salt is part of the routing key; the tenant is not (the client may not know it).
  EXPECT_NE(RoutingKeys(Layout(), "x", Prompt(1, 1), 1)[0], keys[0]);
}

// The vectors the Python package's tests read too: C++ and Python clients of one cluster
// write a block to the same shards.
TEST(ShardPlacementTest, SharedRendezvousVectorsFile) {
  std::ifstream in(KVTIER_SOURCE_DIR "/tests/data/rendezvous_vectors.txt");
  ASSERT_TRUE(in) << "tests/data/rendezvous_vectors.txt is missing";
  std::string line;
  std::vector<uint64_t> hashes;
  int keys = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (hashes.empty()) {
      for (absl::string_view name : absl::StrSplit(line, ',')) {
        hashes.push_back(ShardNameHash(std::string(name)));
      }
      continue;
    }
    const std::vector<std::string> f = absl::StrSplit(line, '|');
    ASSERT_EQ(f.size(), 2u) << line;
    absl::StatusOr<BlockKey> key = BlockKey::FromBytes(absl::HexStringToBytes(f[0]));
    ASSERT_TRUE(key.ok());
    std::vector<std::string> want = absl::StrSplit(f[1], ',');
    std::vector<std::string> got;
    for (uint32_t s : RankShards(hashes, *key)) got.push_back(absl::StrCat(s));
    EXPECT_EQ(got, want) << line;
    ++keys;
  }
  EXPECT_GE(keys, 10);
}

// Adding a fourth shard to three moves about a quarter of the keys, all to the new shard.
// Measured on the bundled trace's blocks when it is there, and on generated prompts.
void ExpectQuarterMoves(const std::vector<BlockKey>& keys) {
  std::vector<uint64_t> three, four;
  for (int i = 0; i < 4; ++i) {
    (i < 3 ? three : four).push_back(ShardNameHash(absl::StrCat("kvtier-store-", i)));
  }
  four.insert(four.begin(), three.begin(), three.end());
  uint64_t moved = 0, moved_elsewhere = 0, replica_sets_changed = 0;
  for (const BlockKey& k : keys) {
    const std::vector<uint32_t> a = RankShards(three, k), b = RankShards(four, k);
    if (a[0] != b[0]) {
      ++moved;
      if (b[0] != 3) ++moved_elsewhere;
    }
    if (std::set<uint32_t>{a[0], a[1]} != std::set<uint32_t>{b[0], b[1]}) ++replica_sets_changed;
  }
  const double share = double(moved) / double(keys.size());
  std::cout << "keys " << keys.size() << ", owner changed " << share << ", R=2 owner set changed "
            << double(replica_sets_changed) / double(keys.size()) << "\n";
  EXPECT_NEAR(share, 0.25, 0.03);
  EXPECT_EQ(moved_elsewhere, 0u);
}

TEST(ShardPlacementTest, AFourthShardTakesAQuarterOfTheBundledTracesBlocks) {
  absl::StatusOr<std::vector<bench::TraceRequest>> trace = bench::LoadTrace(KVTIER_TRACE);
  if (!trace.ok()) GTEST_SKIP() << "no bundled trace: " << trace.status();
  std::set<std::vector<uint64_t>> seen;
  std::vector<BlockKey> keys;
  for (const bench::TraceRequest& r : *trace) {
    const std::vector<uint32_t> tokens = bench::ReplayTokens(r.hash_ids);
    const std::vector<BlockKey> k =
        RoutingKeys(bench::ReplayLayout(), "", tokens, r.hash_ids.size());
    for (size_t i = 0; i < k.size(); ++i) {
      std::vector<uint64_t> prefix(r.hash_ids.begin(), r.hash_ids.begin() + i + 1);
      if (seen.insert(std::move(prefix)).second) keys.push_back(k[i]);
    }
  }
  ASSERT_GT(keys.size(), 1000u);
  ExpectQuarterMoves(keys);
}

TEST(ShardPlacementTest, AFourthShardTakesAQuarterOfGeneratedBlocks) {
  std::vector<BlockKey> keys;
  for (uint32_t p = 0; p < 40; ++p) {
    const std::vector<BlockKey> k = RoutingKeys(Layout(), "", Prompt(500, p), 500);
    keys.insert(keys.end(), k.begin(), k.end());
  }
  ExpectQuarterMoves(keys);
}

TEST(ShardedClusterTest, BadTargetsAreRefusedByName) {
  for (const char* bad : {"a:1,,b:2", "dns:///nameonly", "dns://auth/name:1", ","}) {
    absl::StatusOr<std::unique_ptr<ShardedClient>> c = ShardedClient::Create({.targets = bad});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << c.status();
  }
  absl::StatusOr<std::unique_ptr<ShardedClient>> c =
      ShardedClient::Create({.targets = "127.0.0.1:1,127.0.0.1:2", .replication = 0});
  EXPECT_TRUE(absl::IsInvalidArgument(c.status()));
}

// A DNS name is every address it resolves to (a headless Service): here localhost, whose
// 127.0.0.1 is a store (an IPv6 ::1, where present, is a shard that never answers and so
// never joins).
TEST(ShardedClusterTest, ADnsNameIsEveryAddressItResolvesTo) {
  absl::StatusOr<ShardEndpoints> e = ShardEndpoints::Parse("dns:///localhost:4711");
  ASSERT_TRUE(e.ok()) << e.status();
  absl::StatusOr<std::vector<std::string>> targets = e->Resolve();
  ASSERT_TRUE(targets.ok()) << targets.status();
  EXPECT_NE(std::find(targets->begin(), targets->end(), "127.0.0.1:4711"), targets->end());
  EXPECT_FALSE(ShardEndpoints::Parse("dns:///no-such-host.invalid:1")->Resolve().ok());

  Cluster cluster;
  ASSERT_TRUE(cluster.Start(1, {"--t1_bytes=8388608", "--t1_min_slot_bytes=8192"}).ok());
  ShardedClientOptions o;
  o.targets = absl::StrCat("dns:///localhost:", cluster.Target(0).substr(10));
  o.shard.tenant = "dns";
  o.shard.timeout = absl::Seconds(2);
  absl::StatusOr<std::unique_ptr<ShardedClient>> client = ShardedClient::Create(o);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_EQ((*client)->ShardClients().size(), 1u);
  EXPECT_EQ((*client)->ShardClients()[0].first, "store-0");
  const std::vector<uint32_t> tokens = Prompt(8, 3);
  ASSERT_TRUE((*client)->Put(Layout(), tokens, 0, Payload(8, 3)).ok());
  absl::StatusOr<LookupReply> found = (*client)->Lookup(Layout(), tokens, {.lease = false});
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->matched_blocks, 8u);
}

// Three shards, R = 2: every block on two of them, all three used; read back byte for byte,
// layer by layer across shards.
TEST(ShardedClusterTest, PutLookupFetchAcrossThreeShardsWithTwoCopies) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start(3, {"--t1_bytes=67108864", "--t1_min_slot_bytes=8192"}).ok());
  std::unique_ptr<ShardedClient> client = Connect(cluster, 2);
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->ShardClients().size(), 3u);

  const uint32_t n = 96;
  const KvLayout layout = Layout();
  const std::vector<uint32_t> tokens = Prompt(n, 7);
  const std::vector<uint8_t> payload = Payload(n, 7);
  absl::StatusOr<PutReply> put = client->Put(layout, tokens, 0, payload);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->failed_blocks, 0u);
  EXPECT_EQ(put->stored_blocks, 2 * n);  // counted per copy
  uint64_t total = 0;
  for (int i = 0; i < 3; ++i) {
    const uint64_t held = T1Blocks(cluster.Stats(i));
    EXPECT_GT(held, n / 3) << "shard " << i;
    EXPECT_LT(held, n) << "shard " << i;
    total += held;
  }
  EXPECT_EQ(total, 2 * n);

  absl::StatusOr<LookupReply> found = client->Lookup(layout, tokens);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->matched_blocks, n);
  ASSERT_NE(found->lease_id, 0u);

  std::vector<uint8_t> got(payload.size(), 0);
  std::vector<std::span<uint8_t>> out;
  for (uint32_t b = 0; b < n; ++b)
    out.emplace_back(got.data() + b * layout.BlockBytes(), layout.BlockBytes());
  std::vector<std::pair<uint32_t, uint64_t>> reports;  // (block, layer)
  absl::StatusOr<FetchReply> fetched =
      client->Fetch({.lease_id = found->lease_id}, out,
                    {.order = v1::FETCH_ORDER_LAYER_MAJOR,
                     .on_chunk = [&](uint32_t b, uint64_t off, uint64_t len) {
                       for (uint64_t o = off; o < off + len; o += layout.LayerBytes()) {
                         reports.emplace_back(b, o / layout.LayerBytes());
                       }
                     }});
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(fetched->bytes, payload.size());
  EXPECT_TRUE(got == payload);
  // Layer-major across shards: every block's layer l before any block's layer l + 1, and
  // each (block, layer) exactly once.
  ASSERT_EQ(reports.size(), uint64_t{n} * layout.num_layers);
  std::set<std::pair<uint32_t, uint64_t>> distinct(reports.begin(), reports.end());
  EXPECT_EQ(distinct.size(), reports.size());
  for (size_t i = 0; i < reports.size(); ++i) {
    EXPECT_EQ(reports[i].second, i / n) << "report " << i;
  }
  // Fetch by the lease's keys works too; by keys it never found, NOT_FOUND.
  std::vector<BlockKey> some(found->keys.begin() + 10, found->keys.begin() + 20);
  std::vector<std::span<uint8_t>> ten(out.begin() + 10, out.begin() + 20);
  std::fill(got.begin(), got.end(), 0);
  ASSERT_TRUE(client->Fetch({.keys = some}, ten).ok());
  EXPECT_TRUE(std::equal(payload.begin() + 10 * layout.BlockBytes(),
                         payload.begin() + 20 * layout.BlockBytes(),
                         got.begin() + 10 * layout.BlockBytes()));
  BlockKey unknown;
  unknown.bytes.fill(0xab);
  std::vector<std::span<uint8_t>> one(out.begin(), out.begin() + 1);
  EXPECT_TRUE(absl::IsNotFound(client->Fetch({.keys = {unknown}}, one).status()));
  ASSERT_TRUE(client->Release(found->lease_id).ok());
  EXPECT_TRUE(absl::IsNotFound(client->Release(found->lease_id)));

  // Another tenant sees nothing, though placement is the same for it.
  ShardedClientOptions other;
  other.targets = cluster.Targets();
  other.shard.tenant = "someone-else";
  absl::StatusOr<std::unique_ptr<ShardedClient>> stranger = ShardedClient::Create(other);
  ASSERT_TRUE(stranger.ok());
  absl::StatusOr<LookupReply> nothing = (*stranger)->Lookup(layout, tokens);
  ASSERT_TRUE(nothing.ok());
  EXPECT_EQ(nothing->matched_blocks, 0u);

  // Bad input is still the caller's error, named.
  KvLayout bad = layout;
  bad.num_layers = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(client->Lookup(bad, tokens).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(client->Put(layout, tokens, n, payload).status()));

  // Delete goes to every shard.
  absl::StatusOr<uint32_t> deleted = client->Delete(found->keys);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 2 * n);
}

// A stalled shard (SIGSTOP) costs one deadline, then is skipped: with R = 2 the prompt is
// still found whole and read from the other copies; it rejoins once it answers again.
TEST(ShardedClusterTest, AStalledShardIsAMissNotAnErrorOrAHang) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start(3, {"--t1_bytes=67108864", "--t1_min_slot_bytes=8192"}).ok());
  std::unique_ptr<ShardedClient> client = Connect(cluster, 2, absl::Seconds(1));
  ASSERT_NE(client, nullptr);
  const uint32_t n = 48;
  const KvLayout layout = Layout();
  const std::vector<uint32_t> tokens = Prompt(n, 9);
  const std::vector<uint8_t> payload = Payload(n, 9);
  ASSERT_TRUE(client->Put(layout, tokens, 0, payload).ok());

  cluster.store(1).Signal(SIGSTOP);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<LookupReply> found = client->Lookup(layout, tokens);
  const double first =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  cluster.store(1).Signal(SIGCONT);  // before any assertion can leave it stopped
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->matched_blocks, n);
  EXPECT_LT(first, 3.0);
  std::vector<uint8_t> got(payload.size());
  std::vector<std::span<uint8_t>> out;
  for (uint32_t b = 0; b < n; ++b)
    out.emplace_back(got.data() + b * layout.BlockBytes(), layout.BlockBytes());
  absl::StatusOr<FetchReply> fetched = client->Fetch({.lease_id = found->lease_id}, out);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_TRUE(got == payload);
  (void)client->Release(found->lease_id);

  // Back: within a few backoffs it answers Lookups again.
  bool rejoined = false;
  for (int i = 0; i < 50 && !rejoined; ++i) {
    ASSERT_TRUE(client->Lookup(layout, tokens, {.lease = false}).ok());
    for (const ShardStatus& s : client->Shards()) {
      if (s.id == "store-1" && s.healthy && s.lookups > s.lookup_failures + 1) rejoined = true;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(rejoined) << "store-1's log:\n" << cluster.store(1).Log();
}

// The bundled trace (or a generated one) replayed through three shards with R = 2, once
// undisturbed and once with a shard SIGKILLed halfway: no error reaches the caller and
// the hit rate does not drop.
std::vector<bench::TraceRequest> ReplayTrace() {
  absl::StatusOr<std::vector<bench::TraceRequest>> trace = bench::LoadTrace(KVTIER_TRACE);
  std::vector<bench::TraceRequest> t;
  if (trace.ok()) {
    t.assign(trace->begin(), trace->begin() + std::min<size_t>(trace->size(), 1200));
    return t;
  }
  // Shared system prompts, growing sessions and one-off prompts.
  std::mt19937 rng(5);
  uint64_t next = 0;
  auto fresh = [&](int k) {
    std::vector<uint64_t> ids;
    for (int i = 0; i < k; ++i) ids.push_back(next++);
    return ids;
  };
  std::vector<std::vector<uint64_t>> systems = {fresh(3), fresh(3), fresh(3)}, sessions;
  for (int i = 0; i < 1200; ++i) {
    const int k = static_cast<int>(rng() % 10);
    std::vector<uint64_t> ids;
    if (k < 5 && !sessions.empty()) {
      auto& s = sessions[rng() % sessions.size()];
      const auto more = fresh(1 + static_cast<int>(rng() % 3));
      s.insert(s.end(), more.begin(), more.end());
      ids = s;
    } else if (k < 8) {
      ids = systems[rng() % 3];
      const auto more = fresh(2 + static_cast<int>(rng() % 5));
      ids.insert(ids.end(), more.begin(), more.end());
      sessions.push_back(ids);
    } else {
      ids = fresh(4 + static_cast<int>(rng() % 16));
    }
    t.push_back(
        {.timestamp_ms = i * 10, .input_length = int64_t(ids.size()) * 512, .hash_ids = ids});
  }
  return t;
}

TEST(ShardedClusterTest, AShardKilledMidReplayCostsNoErrorsAndNoHits) {
  const std::vector<bench::TraceRequest> trace = ReplayTrace();
  const std::vector<std::string> flags = {"--t1_min_slot_bytes=4096", "--t1_bytes=268435456"};
  double hit_rate[2] = {0, 0};
  double undisturbed_seconds = 0;
  for (int killed = 0; killed < 2; ++killed) {
    Cluster cluster;
    ASSERT_TRUE(cluster.Start(3, flags).ok());
    absl::StatusOr<std::unique_ptr<bench::ReplayBackend>> backend =
        bench::MakeGrpcBackend({.target = cluster.Targets(), .tenant = "replay", .replication = 2});
    ASSERT_TRUE(backend.ok()) << backend.status();
    absl::StatusOr<bench::ReplayResult> result = absl::UnknownError("not run");
    std::thread replay([&] { result = bench::Replay(trace, **backend); });
    if (killed) {
      // Halfway through the replay (by the undisturbed run's time), while calls are in
      // flight.
      absl::SleepFor(absl::Seconds(undisturbed_seconds / 2));
      cluster.store(2).Signal(SIGKILL);
    }
    replay.join();
    ASSERT_TRUE(result.ok()) << result.status();  // no error reached the caller
    EXPECT_EQ(result->fetch_failures, 0u);
    if (!killed) undisturbed_seconds = result->seconds;
    hit_rate[killed] = result->hit_rate();
    std::cout << (killed ? "shard 2 killed halfway" : "undisturbed") << ": hit rate "
              << result->hit_rate() << " over " << result->requests << " requests ("
              << result->blocks << " blocks) in " << result->seconds << " s\n";
  }
  EXPECT_GE(hit_rate[1], hit_rate[0] - 0.005);
}

// A shard restarted on its T2 directory rejoins under its name and serves what it kept.
// R = 1, so what it kept is nowhere else.
TEST(ShardedClusterTest, AShardRestartedOnItsT2DirectoryRejoinsAndServes) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("kvtier-shard-t2-", getpid());
  std::filesystem::remove_all(dir);
  Cluster cluster;
  ASSERT_TRUE(cluster
                  .Start(3,
                         [&](int i) {
                           std::filesystem::create_directories(dir / absl::StrCat(i));
                           return std::vector<std::string>{
                               "--t1_bytes=131072",
                               "--t1_min_slot_bytes=8192",
                               "--t2_bytes=16777216",
                               "--t2_admit_min_score=0", "--t2_admit_min_return=0",
                               "--t2_direct_io=false",
                               absl::StrCat("--t2_dir=", (dir / absl::StrCat(i)).string())};
                         })
                  .ok());
  std::unique_ptr<ShardedClient> client = Connect(cluster, 1, absl::Seconds(2));
  ASSERT_NE(client, nullptr);
  const KvLayout layout = Layout();
  // T1 holds 16 blocks a shard; 30 prompts of 8 blocks push most of them to T2.
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t p = 0; p < 30; ++p) {
    prompts.push_back(Prompt(8, 1000 + p));
    ASSERT_TRUE(client->Put(layout, prompts.back(), 0, Payload(8, 1000 + p)).ok());
  }
  cluster.store(1).Signal(SIGKILL);
  ASSERT_TRUE(cluster.store(1).Wait(absl::Seconds(10)).has_value());
  ASSERT_TRUE(cluster.Restart(1).ok());
  const v1::StatsResponse restarted = cluster.Stats(1);
  EXPECT_EQ(restarted.shard_id(), "store-1");
  ASSERT_GT(restarted.t2_recovered_blocks(), 0u);

  // Within a few backoffs the client reads store-1's recovered blocks from it again.
  uint64_t served = 0;
  for (int round = 0; round < 40 && served == 0; ++round) {
    for (uint32_t p = 0; p < prompts.size(); ++p) {
      absl::StatusOr<LookupReply> found = client->Lookup(layout, prompts[p]);
      ASSERT_TRUE(found.ok()) << found.status();
      if (found->matched_blocks == 0) continue;
      const std::vector<uint8_t> want = Payload(8, 1000 + p);
      std::vector<uint8_t> got(uint64_t{found->matched_blocks} * layout.BlockBytes());
      std::vector<std::span<uint8_t>> out;
      for (uint32_t b = 0; b < found->matched_blocks; ++b) {
        out.emplace_back(got.data() + b * layout.BlockBytes(), layout.BlockBytes());
      }
      absl::StatusOr<FetchReply> fetched = client->Fetch({.lease_id = found->lease_id}, out);
      ASSERT_TRUE(fetched.ok()) << fetched.status();
      EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin()));
      (void)client->Release(found->lease_id);
    }
    served = cluster.Stats(1).fetched_blocks();
    if (served == 0) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GT(served, 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvtier
