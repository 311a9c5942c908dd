// The worker's promise, end to end with real processes on loopback: kvtier-store and
// kvtier-worker. Generate with a cold cache; restart the worker (empty pool); generate the
// same prompt and a continuation: the prefix comes from the store and the tokens (and the
// first token's logits) are identical. With the store killed: recomputed, same tokens. The
// metrics endpoint counts the tokens by source.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "bench/child_process.h"
#include "client/cache_store_client.h"
#include "kvtier/v1/decode_worker.grpc.pb.h"
#include "tests/services/store_process.h"
#include "worker/llama_config.h"

namespace kvtier::testing {
namespace {

struct Result {
  v1::PrefixSources sources;
  std::vector<float> logits;
  std::vector<uint32_t> tokens;
};

std::vector<uint32_t> Prompt(uint32_t n, uint32_t salt) {
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = (i * 29 + salt * 13 + 5) % 512;
  return p;
}

std::unique_ptr<StoreProcess> StartWorker(const std::string& store_target,
                                          const std::string& shm_socket = "",
                                          std::vector<std::string> more = {}) {
  std::vector<std::string> flags = {"--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
                                    "--store=" + store_target, "--store_timeout=1s", "--pages=64",
                                    "--seed=5", "--tenant=e2e", "--store_shm_socket=" + shm_socket};
  flags.insert(flags.end(), more.begin(), more.end());
  absl::StatusOr<std::unique_ptr<StoreProcess>> w =
      StoreProcess::StartBinary(KVTIER_WORKER_BINARY, flags);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *std::move(w) : nullptr;
}

Result Generate(const StoreProcess& worker, const std::vector<uint32_t>& prompt, uint32_t n) {
  auto channel = grpc::CreateChannel(worker.target(), grpc::InsecureChannelCredentials());
  auto stub = v1::DecodeWorker::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::GenerateRequest request;
  request.mutable_token_ids()->Assign(prompt.begin(), prompt.end());
  request.set_max_new_tokens(n);
  request.set_return_first_logits(true);
  auto reader = stub->Generate(&ctx, request);
  Result r;
  v1::GenerateResponse message;
  bool first = true;
  while (reader->Read(&message)) {
    if (first) {
      r.sources = message.sources();
      r.logits.assign(message.first_logits().begin(), message.first_logits().end());
      first = false;
    }
    r.tokens.insert(r.tokens.end(), message.token_ids().begin(), message.token_ids().end());
  }
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  return r;
}

double Metric(const StoreProcess& process, const std::string& series) {
  absl::StatusOr<std::string> body = HttpGet(process.metrics_port(), "/metrics");
  EXPECT_TRUE(body.ok());
  std::smatch m;
  const std::regex re("\n" + std::regex_replace(series, std::regex(R"([{}"])"), R"(\$&)") +
                      R"( ([0-9.e+-]+))");
  if (!body.ok() || !std::regex_search(*body, m, re)) return -1;
  return std::stod(m[1]);
}

void ExpectSameLogits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), worker::TinyLlamaConfig().vocab_size);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << "logit " << i;
}

TEST(WorkerProcessTest, RestoredPrefixesDecodeExactlyLikeRecomputedOnes) {
  absl::StatusOr<std::unique_ptr<StoreProcess>> store =
      StoreProcess::Start({"--t1_bytes=16777216", "--t1_min_slot_bytes=16384"});
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<uint32_t> prompt = Prompt(100, 1);

  auto worker = StartWorker((*store)->target());
  ASSERT_NE(worker, nullptr);
  const Result cold = Generate(*worker, prompt, 12);
  EXPECT_EQ(cold.sources.computed_tokens(), 100u);
  EXPECT_EQ(cold.tokens.size(), 12u);
  // SIGTERM drains: the offloads of the closed sequence finish before the exit.
  worker->Signal(SIGTERM);
  ASSERT_EQ(worker->Wait(absl::Seconds(30)), 0) << worker->Log();

  worker = StartWorker((*store)->target());  // an empty page pool
  ASSERT_NE(worker, nullptr);
  const Result warm = Generate(*worker, prompt, 12);
  EXPECT_EQ(warm.sources.local_tokens(), 0u);
  EXPECT_EQ(warm.sources.store_tokens(), 96u);
  EXPECT_EQ(warm.sources.computed_tokens(), 4u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  ExpectSameLogits(warm.logits, cold.logits);
  EXPECT_EQ(Metric(*worker, R"(kvtier_worker_prefix_tokens_total{source="store"})"), 96);
  EXPECT_EQ(Metric(*worker, R"(kvtier_worker_prefix_tokens_total{source="computed"})"), 4);

  // The prompt and a continuation, against a worker without a store as the reference.
  std::vector<uint32_t> longer = prompt;
  longer.insert(longer.end(), cold.tokens.begin(), cold.tokens.end());
  for (uint32_t t : Prompt(21, 2)) longer.push_back(t);
  auto alone = StartWorker("");
  ASSERT_NE(alone, nullptr);
  const Result want = Generate(*alone, longer, 8);
  EXPECT_EQ(want.sources.computed_tokens(), longer.size());
  worker->Signal(SIGTERM);
  ASSERT_EQ(worker->Wait(absl::Seconds(30)), 0);
  worker = StartWorker((*store)->target());
  ASSERT_NE(worker, nullptr);
  const Result cont = Generate(*worker, longer, 8);
  // 100 prompt + 11 decoded tokens had K/V: 6 full blocks in the store.
  EXPECT_EQ(cont.sources.store_tokens(), 96u);
  EXPECT_EQ(cont.tokens, want.tokens);
  ExpectSameLogits(cont.logits, want.logits);

  // The store dies: a fresh worker recomputes and still answers the same.
  (*store)->Signal(SIGKILL);
  (*store)->Wait(absl::Seconds(10));
  worker->Signal(SIGTERM);
  worker->Wait(absl::Seconds(30));
  worker = StartWorker((*store)->target());
  ASSERT_NE(worker, nullptr);
  const Result alone_again = Generate(*worker, prompt, 12);
  EXPECT_EQ(alone_again.sources.computed_tokens(), 100u);
  EXPECT_EQ(alone_again.tokens, cold.tokens);
  EXPECT_EQ(Metric(*worker, "kvtier_worker_restore_failures_total"), 1);
}

// The same-node data plane between the real processes: the store copies the offloaded
// blocks out of the worker's shared-memory page pool and the restored ones into it; the
// tokens are those of the cold run, and the store's socket goes with it on SIGTERM.
// --kv_dtype: the real binaries with compressed K/V. The store holds the fp8 blocks as the
// worker made them (half of bf16's bytes plus scales), and a restarted worker restores them
// and decodes exactly what a worker computing everything decodes.
TEST(WorkerProcessTest, CompressedKvRestoresExactlyLikeItRecomputes) {
  absl::StatusOr<std::unique_ptr<StoreProcess>> store =
      StoreProcess::Start({"--t1_bytes=16777216"});
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<uint32_t> prompt = Prompt(100, 3);
  const std::vector<std::string> fp8 = {"--kv_dtype=fp8_e4m3"};
  auto worker = StartWorker((*store)->target(), "", fp8);
  ASSERT_NE(worker, nullptr);
  const Result cold = Generate(*worker, prompt, 8);
  worker->Signal(SIGTERM);
  ASSERT_EQ(worker->Wait(absl::Seconds(30)), 0) << worker->Log();
  worker = StartWorker((*store)->target(), "", fp8);
  ASSERT_NE(worker, nullptr);
  const Result warm = Generate(*worker, prompt, 8);
  EXPECT_EQ(warm.sources.store_tokens(), 96u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  ExpectSameLogits(warm.logits, cold.logits);
  worker::LlamaConfig config = worker::TinyLlamaConfig();
  config.kv_dtype = DType::kFp8E4M3;
  const uint64_t block = config.Layout().BlockBytes();
  EXPECT_EQ(Metric(*worker, "kvtier_worker_restored_bytes_total"), 6.0 * block);
  auto alone = StartWorker("", "", fp8);
  ASSERT_NE(alone, nullptr);
  const Result want = Generate(*alone, prompt, 8);
  EXPECT_EQ(want.tokens, cold.tokens);
  ExpectSameLogits(want.logits, cold.logits);
  auto bad = bench::ChildProcess::Start(KVTIER_WORKER_BINARY, {"--kv_dtype=fp4", "--store="});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ((*bad)->Wait(absl::Seconds(20)), 2);
  EXPECT_NE((*bad)->Log().find("unknown --kv_dtype"), std::string::npos) << (*bad)->Log();
}

TEST(WorkerProcessTest, SameNodeRestoresAndOffloadsIdentically) {
  std::string dir = (std::filesystem::temp_directory_path() / "kvtier-e2e-shm-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string socket = dir + "/shm.sock";
  absl::StatusOr<std::unique_ptr<StoreProcess>> store = StoreProcess::Start(
      {"--t1_bytes=16777216", "--t1_min_slot_bytes=16384", "--shm_socket=" + socket});
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<uint32_t> prompt = Prompt(100, 3);
  auto worker = StartWorker((*store)->target(), socket);
  ASSERT_NE(worker, nullptr);
  const Result cold = Generate(*worker, prompt, 8);
  // 100 + 7 tokens have K/V: 6 full blocks, offloaded (asynchronously) from shared memory.
  for (int i = 0; i < 200 && Metric(*worker, "kvtier_worker_offloaded_blocks_total") < 6; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(Metric(*worker, "kvtier_worker_offloaded_blocks_total"), 6);
  EXPECT_EQ(Metric(*worker, "kvtier_worker_shm_offload_blocks_total"), 6);
  worker->Signal(SIGTERM);
  ASSERT_EQ(worker->Wait(absl::Seconds(30)), 0) << worker->Log();
  worker = StartWorker((*store)->target(), socket);
  ASSERT_NE(worker, nullptr);
  const Result warm = Generate(*worker, prompt, 8);
  EXPECT_EQ(warm.sources.store_tokens(), 96u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  ExpectSameLogits(warm.logits, cold.logits);
  EXPECT_EQ(Metric(*worker, "kvtier_worker_shm_restores_total"), 1);
  EXPECT_EQ(Metric(*worker, "kvtier_worker_restore_failures_total"), 0);
  worker->Signal(SIGTERM);
  ASSERT_EQ(worker->Wait(absl::Seconds(30)), 0);
  (*store)->Signal(SIGTERM);
  ASSERT_EQ((*store)->Wait(absl::Seconds(30)), 0) << (*store)->Log();
  EXPECT_FALSE(std::filesystem::exists(socket)) << "the store left its socket behind";
  std::filesystem::remove_all(dir);
}

// A worker over a cluster of three store shards (R = 2), all on this node: its restores
// gather blocks from every shard through shared memory, decode exactly like the cold run,
// and still do when a shard is gone.
TEST(WorkerProcessTest, AClusterOfShardsRestoresIdenticallyAndSurvivesAShardLoss) {
  std::string dir = (std::filesystem::temp_directory_path() / "kvtier-e2e-shards-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  std::vector<std::unique_ptr<StoreProcess>> stores;
  std::string targets;
  for (int i = 0; i < 3; ++i) {
    const std::string id = "store-" + std::to_string(i);
    absl::StatusOr<std::unique_ptr<StoreProcess>> s =
        StoreProcess::Start({"--t1_bytes=16777216", "--t1_min_slot_bytes=16384", "--shard_id=" + id,
                             "--shm_socket=" + dir + "/" + id + ".sock"});
    ASSERT_TRUE(s.ok()) << s.status();
    targets += (i ? "," : "") + (*s)->target();
    stores.push_back(*std::move(s));
  }
  const std::vector<std::string> cluster = {"--store_replication=2", "--store_shm_dir=" + dir};
  const std::vector<uint32_t> prompt = Prompt(100, 4);
  auto worker = StartWorker(targets, "", cluster);
  ASSERT_NE(worker, nullptr);
  const Result cold = Generate(*worker, prompt, 8);
  EXPECT_EQ(cold.sources.computed_tokens(), 100u);
  worker->Signal(SIGTERM);
  ASSERT_EQ(worker->Wait(absl::Seconds(30)), 0) << worker->Log();
  // 6 full blocks, 2 copies each, over the shards: every shard took some.
  // Offloaded when the sequence closed, after 8 decoded tokens: every Put reported them.
  uint64_t copies = 0, reported = 0;
  for (const auto& store : stores) {
    CacheStoreClient c({.target = store->target()});
    absl::StatusOr<v1::StatsResponse> st = c.Stats();
    ASSERT_TRUE(st.ok());
    copies += st->put_stored_blocks();
    reported += st->put_output_reported_blocks();
  }
  EXPECT_EQ(copies, 12u);
  EXPECT_EQ(reported, copies);

  worker = StartWorker(targets, "", cluster);
  ASSERT_NE(worker, nullptr);
  const Result warm = Generate(*worker, prompt, 8);
  EXPECT_EQ(warm.sources.store_tokens(), 96u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  ExpectSameLogits(warm.logits, cold.logits);
  EXPECT_EQ(Metric(*worker, "kvtier_worker_shm_restores_total"), 1);
  EXPECT_EQ(Metric(*worker, R"(kvtier_worker_store_shard_up{shard="store-1"})"), 1);
  // The per-shard families are exactly those docs/metrics.md lists.
  {
    std::ifstream in(KVTIER_SOURCE_DIR "/docs/metrics.md");
    std::stringstream doc;
    doc << in.rdbuf();
    const std::string text = doc.str();
    std::set<std::string> documented, exposed;
    const std::regex row_re(R"(\n\| `(kvtier_worker_store_shard_\w+)` \|)");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), row_re);
         it != std::sregex_iterator(); ++it) {
      documented.insert((*it)[1]);
    }
    absl::StatusOr<std::string> body = HttpGet(worker->metrics_port(), "/metrics");
    ASSERT_TRUE(body.ok());
    const std::regex type_re(R"(# TYPE (kvtier_worker_store_shard_\w+) )");
    for (auto it = std::sregex_iterator(body->begin(), body->end(), type_re);
         it != std::sregex_iterator(); ++it) {
      exposed.insert((*it)[1]);
    }
    EXPECT_EQ(exposed, documented);
    EXPECT_FALSE(documented.empty());
  }
  worker->Signal(SIGTERM);
  ASSERT_EQ(worker->Wait(absl::Seconds(30)), 0);

  // A shard dies: every block still has a copy; the restore is whole and identical.
  stores[1]->Signal(SIGKILL);
  stores[1]->Wait(absl::Seconds(10));
  worker = StartWorker(targets, "", cluster);
  ASSERT_NE(worker, nullptr);
  const Result degraded = Generate(*worker, prompt, 8);
  EXPECT_EQ(degraded.sources.store_tokens(), 96u);
  EXPECT_EQ(degraded.tokens, cold.tokens);
  ExpectSameLogits(degraded.logits, cold.logits);
  EXPECT_EQ(Metric(*worker, "kvtier_worker_restore_failures_total"), 0);
  worker->Signal(SIGTERM);
  ASSERT_EQ(worker->Wait(absl::Seconds(30)), 0);
  std::filesystem::remove_all(dir);
}

TEST(WorkerProcessTest, DocsListExactlyTheExposedWorkerMetrics) {
  std::ifstream in(KVTIER_SOURCE_DIR "/docs/metrics.md");
  ASSERT_TRUE(in) << "docs/metrics.md is missing";
  std::stringstream doc;
  doc << in.rdbuf();
  const std::string text = doc.str();
  std::set<std::string> documented, exposed;
  const std::regex row_re(R"(\n\| `(kvtier_worker_\w+)` \|)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), row_re);
       it != std::sregex_iterator(); ++it) {
    // The per-shard families appear with a cluster (checked by the cluster test).
    if (!std::string((*it)[1]).starts_with("kvtier_worker_store_shard_")) {
      documented.insert((*it)[1]);
    }
  }
  auto worker = StartWorker("");
  ASSERT_NE(worker, nullptr);
  absl::StatusOr<std::string> body = HttpGet(worker->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok());
  const std::regex type_re(R"(# TYPE (kvtier_\w+) )");
  for (auto it = std::sregex_iterator(body->begin(), body->end(), type_re);
       it != std::sregex_iterator(); ++it) {
    exposed.insert((*it)[1]);
  }
  EXPECT_EQ(exposed, documented);
}

}  // namespace
}  // namespace kvtier::testing
