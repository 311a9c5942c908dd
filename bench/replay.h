// Trace replay: drives a kvtier store with a Mooncake-format trace exactly as an inference
// engine would, and measures the prefix hit rate.
//
// For each request, in trace order:
//   1. Lookup the prompt (with a lease): the matched blocks are the hit blocks;
//   2. Fetch the matched blocks (this is what promotes T2 blocks to T1) and Release;
//   3. Put the blocks after the matched prefix, as an engine does after prefill. A Put of
//      a block that is already stored is an access to it, nothing more. The last block is
//      flagged as a partial tail when input_length is not a multiple of 512 tokens.
// hit_rate = hit blocks / requested blocks: the prefix semantics of
// ../shared/tools/trace_oracle.py. With policy lru and no T2 the store evicts exactly as
// the oracle's LRU does (tests/bench/replay_test.cc holds it to that).
//
// Each trace block becomes kReplayTokensPerBlock tokens derived from its hash id, so equal
// id prefixes give equal chained keys; payloads are small (kReplayLayout) and derived from
// the id, so every Fetch is verified against real bytes.
#ifndef KVTIER_BENCH_REPLAY_H_
#define KVTIER_BENCH_REPLAY_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/trace.h"
#include "cache_store/block_store.h"
#include "cache_store/kv_layout.h"
#include "cache_store/tenant_quota.h"

namespace kvtier::bench {

inline constexpr uint32_t kReplayTokensPerBlock = 2;
// 1 layer x 1 KV head x head_dim 16, fp16, 2 tokens: 128-byte blocks.
KvLayout ReplayLayout();
// T1/T2 slot size the replay uses (the smallest a slot can be).
inline constexpr uint64_t kReplaySlotBytes = 4096;

std::vector<uint32_t> ReplayTokens(std::span<const uint64_t> hash_ids);
// Payload of blocks [first, first + n) of the prompt (deterministic per hash id).
std::vector<uint8_t> ReplayPayload(std::span<const uint64_t> hash_ids, uint32_t first, uint32_t n);

// One trace request as the backends see it: its hash ids and the tokens derived from them.
struct ReplayPrompt {
  std::span<const uint64_t> hash_ids;
  std::vector<uint32_t> tokens;  // ReplayTokens(hash_ids)
  uint32_t output_tokens = 0;    // the trace's output_length (PutParams::output_tokens)
};

// What one backend (in-process engine or a kvtier-store over gRPC) does per request.
class ReplayBackend {
 public:
  struct Hits {
    uint32_t t1 = 0;
    uint32_t t2 = 0;
    bool fetch_failed = false;
  };
  struct Counters {
    uint64_t capacity_blocks = 0;
    uint64_t ssd_capacity_blocks = 0;
    uint64_t t2_bytes_written = 0;
    uint64_t demoted_blocks = 0;
    uint64_t demotion_rejected_blocks = 0;
    uint64_t promoted_blocks = 0;
    uint64_t clean_demotions = 0;
    uint64_t t2_write_queue_drops = 0;
    uint64_t t2_evicted_blocks = 0;
    bool t2_direct_io = false;
    std::string policy;
    double t1_bonus_weight = 0;  // at the end of the run (a cluster's: its last shard's)
  };
  virtual ~ReplayBackend() = default;
  virtual absl::StatusOr<Hits> LookupFetchRelease(const ReplayPrompt& prompt) = 0;
  // Puts blocks [first_block, first_block + payload.size() / block size) of the prompt.
  virtual absl::Status Put(const ReplayPrompt& prompt, uint32_t first_block,
                           std::span<const uint8_t> payload, bool last_block_partial) = 0;
  virtual absl::StatusOr<Counters> Stats() = 0;
  // Waits for work the backend queued (T2 writes); the replay's time includes it.
  virtual void Drain() {}
  // The round trip of every Lookup so far, in milliseconds (empty where not measured).
  virtual std::vector<double> LookupMillis() const { return {}; }
  // Whether several threads may call LookupFetchRelease and Put at once (Replay's
  // `concurrency` above 1).
  virtual bool ThreadSafe() const { return false; }
};

struct EngineBackendOptions {
  uint64_t capacity_blocks = 0;
  uint64_t ssd_capacity_blocks = 0;  // 0: no T2
  std::string ssd_dir;               // required with T2
  std::string policy = "adaptive";
  std::string ssd_policy = "slru";
  double t2_admit_min_score = 0.05;
  std::string t2_admission = "predict";
  double t2_admit_min_return = 0.04;
  bool t2_keep_promoted_copy = false;
  uint32_t t2_promote_after_reads = 8;
  int t2_read_threads = 8;
  int t2_write_threads = 4;
  // The replay waits for the store's T2 writes past this backlog (bench/replay.cc says
  // why); t2_sync: after every request, with one reader and one writer thread: disk I/O as
  // the store did it before it had I/O threads, the reference for the speed-up.
  static constexpr uint64_t kWriteBacklogBytes = 1 << 20;
  bool t2_sync = false;
  std::string tenant = "replay";
  TenantQuotas quotas;
};
absl::StatusOr<std::unique_ptr<ReplayBackend>> MakeEngineBackend(const EngineBackendOptions& o);
// The store MakeEngineBackend makes, and a backend of one tenant on a store (several
// tenants may share one: bench/noisy_neighbor_bench.h).
absl::StatusOr<std::shared_ptr<BlockStore>> MakeEngineStore(const EngineBackendOptions& o);
std::unique_ptr<ReplayBackend> MakeEngineBackendOn(
    std::shared_ptr<BlockStore> store, std::string tenant,
    uint64_t backlog_bytes = EngineBackendOptions::kWriteBacklogBytes);

struct GrpcBackendOptions {
  // One store (HOST:PORT) or a cluster of shards (HOST:PORT,HOST:PORT or dns:///NAME:PORT).
  std::string target;
  std::string tenant = "replay";
  std::string auth_token;
  uint32_t replication = 1;  // a cluster's R
  uint32_t placement_span = 128;  // a cluster's ShardedClientOptions::placement_span
};
absl::StatusOr<std::unique_ptr<ReplayBackend>> MakeGrpcBackend(const GrpcBackendOptions& o);

// Several backends as isolated caches (each node with its own local cache): request i goes
// to backend i mod N, its Put too; counters are summed.
std::unique_ptr<ReplayBackend> MakeRoundRobinBackend(
    std::vector<std::unique_ptr<ReplayBackend>> backends);

struct ReplayResult {
  std::string trace;
  std::string mode;
  uint64_t requests = 0;
  uint64_t blocks = 0;
  uint64_t unique_blocks = 0;
  uint64_t hit_blocks = 0;
  uint64_t t1_hit_blocks = 0;
  uint64_t t2_hit_blocks = 0;
  uint64_t fetch_failures = 0;
  uint32_t concurrency = 1;
  double seconds = 0;
  // Lookup round trip percentiles (grpc mode; 0 in engine mode).
  double lookup_p50_ms = 0;
  double lookup_p99_ms = 0;
  ReplayBackend::Counters counters;

  double hit_rate() const { return blocks ? double(hit_blocks) / double(blocks) : 0; }
  std::string ToJson() const;
};

// One request (steps 1-3 above), added to r's counts (requests, blocks, hits).
absl::Status ReplayRequest(const TraceRequest& request, ReplayBackend& backend, ReplayResult& r);

// Replays the first `limit` requests (0: all). With `concurrency` above 1 that many threads
// take the requests in trace order, each the next one not yet taken (clients of one store
// arriving back to back: a request's lookup can run while another waits for the disk);
// REQUIRES backend.ThreadSafe() then, else InvalidArgument.
absl::StatusOr<ReplayResult> Replay(const std::vector<TraceRequest>& trace, ReplayBackend& backend,
                                    size_t limit = 0, uint32_t concurrency = 1);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_REPLAY_H_
