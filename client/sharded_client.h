// ShardedClient: one logical cache over N kvtier-store shards, with no coordinator.
//
// Membership. The shards are a static list or every address of a DNS name (a StatefulSet's
// headless Service; client/shard_endpoints.h), resolved again every resolve_interval. A
// shard joins once it has told its name (StatsResponse.shard_id, the pod name in the
// chart); blocks are placed by names, so a shard restarted at another address keeps its
// blocks' placement, and a shard that appears or disappears moves only the keys it gains
// or loses (rendezvous hashing, client/shard_placement.h).
//
// Replication. A Put cuts its blocks into runs (placement_span) and sends each run to the
// R first live shards of the ranking of the run's first block, in parallel: a block is
// committed when at least one of them committed it (what each owner did is counted per
// shard). Lookup asks every live shard in parallel which of the prompt's blocks it holds
// (LookupRequest.report_present, with a lease on each shard; an ordinary Lookup when there
// is one shard) and
// returns the longest prefix of blocks held somewhere, under one lease of its own that
// stands for the shards' leases. Fetch reads each block from one of the shards that
// reported it, the shards in parallel, straight into the caller's buffers (same-node
// delivery for the shards on this node); when a shard fails mid-fetch its blocks come
// from the next shard that holds them, and bytes the caller was already given are never
// rewritten. In layer-major order, layer l is reported once every block's layer l has
// arrived, whichever shard it came from.
//
// Failure. A shard that is down, refuses, or is slow past the deadline is a miss for its
// blocks, never an error for the whole call: it is skipped for a backoff (doubling up to
// max_backoff) and tried again after it. A Fetch fails only when every shard that held a
// block failed; the caller then recomputes, as for a miss.
//
// Fetch by keys needs the keys of a Lookup made through this client whose lease is still
// held (the client remembers where they are until the lease is released); keys it cannot
// place are NOT_FOUND. Pin, Unpin and Delete go to every live shard.
#ifndef KVTIER_CLIENT_SHARDED_CLIENT_H_
#define KVTIER_CLIENT_SHARDED_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "client/cache_store_client.h"
#include "client/call_pool.h"
#include "client/shard_endpoints.h"
#include "client/store_client.h"

namespace kvtier {

struct ShardedClientOptions {
  // "host:port,host:port" or "dns:///NAME:PORT".
  std::string targets;
  // Settings of the connection to each shard (its target and shm_socket are ignored):
  // tenant, token, TLS, the deadline of each call (timeout). A failed shard is skipped,
  // not retried, so max_attempts is 1.
  ClientOptions shard;
  // Copies of each block (R); at most the number of shards.
  uint32_t replication = 1;
  // Blocks placed together: a Put's blocks go in runs of `span` from the first one it
  // carries, each run to the shards of its first block's routing key, so each shard holds
  // runs of a prompt's chain and its eviction policy sees their order (it evicts a run from
  // its end, never from its middle). 1 spreads every block (on the bundled trace 4 shards
  // then hit 0.79x as often as one store of their total size); 128 (2,048 tokens of
  // 16-token blocks) hits 0.97-0.98x (docs/benchmarks.md "Cluster"). Runs start at the
  // Put, not at the prompt's start, so sessions that share a system prompt spread.
  uint32_t placement_span = 128;
  absl::Duration resolve_interval = absl::Seconds(10);
  // How long a failed shard is skipped: min_backoff, doubling per failure up to max_backoff.
  absl::Duration min_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(10);
  // Same-node delivery: a directory with the attach socket of each store on this node as
  // <shard_id>.sock (the chart's sameNode). Empty: every shard over its socket.
  std::string shm_socket_dir;
  // Threads that run the per-shard calls.
  int threads = 16;
};

// One shard as the client sees it (kvtierctl, metrics).
struct ShardStatus {
  std::string target;
  std::string id;  // empty: not joined yet (never reached)
  bool healthy = false;
  bool same_node = false;
  uint64_t lookups = 0, lookup_failures = 0;
  uint64_t put_blocks_committed = 0, put_blocks_failed = 0;
  uint64_t fetched_blocks = 0, fetch_failures = 0, failover_blocks = 0;
};

class ShardedClient final : public StoreClient {
 public:
  // INVALID_ARGUMENT for a malformed target list. Resolves once before returning; shards
  // not reachable yet join later.
  static absl::StatusOr<std::unique_ptr<ShardedClient>> Create(ShardedClientOptions options);
  ~ShardedClient() override;

  absl::StatusOr<LookupReply> Lookup(const KvLayout& layout, std::span<const uint32_t> tokens,
                                     const LookupParams& params = {}) override;
  using StoreClient::PutBlocks;
  absl::StatusOr<PutReply> PutBlocks(const KvLayout& layout, std::span<const uint32_t> tokens,
                                     uint32_t first_block,
                                     std::span<const std::span<const uint8_t>> blocks,
                                     const PutParams& params) override;
  absl::StatusOr<FetchReply> Fetch(const FetchTarget& target,
                                   std::span<const std::span<uint8_t>> out,
                                   const FetchParams& params = {}) override;
  absl::Status Release(uint64_t lease_id) override;
  absl::StatusOr<absl::Duration> Pin(std::span<const BlockKey> keys,
                                     absl::Duration ttl = absl::ZeroDuration()) override;
  absl::StatusOr<uint32_t> Unpin(std::span<const BlockKey> keys) override;
  absl::StatusOr<uint32_t> Delete(std::span<const BlockKey> keys) override;

  // Resolves the targets and learns new shards' names now (also done every
  // resolve_interval).
  void Refresh();
  std::vector<ShardStatus> Shards() const;
  // The client of each joined shard, by shard id (kvtierctl stats and watch).
  std::vector<std::pair<std::string, std::shared_ptr<CacheStoreClient>>> ShardClients() const;

  struct Shard;

 private:
  // The joined shards at one moment, sorted by id; never changed once published.
  struct View {
    std::vector<std::shared_ptr<Shard>> shards;
    std::vector<uint64_t> hashes;  // ShardNameHash of each id
  };
  struct LeaseRecord;
  struct FetchState;

  ShardedClient(ShardedClientOptions options, ShardEndpoints endpoints);
  std::shared_ptr<const View> Snapshot() const;
  void RefreshLoop();
  void SweepLeases(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(leases_mu_);
  void Forget(const LeaseRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(leases_mu_);
  void StartFetch(FetchState& state, const std::shared_ptr<Shard>& shard,
                  std::vector<uint32_t> blocks);
  // Runs call on every live shard in parallel (their health noted); the answers of those
  // asked.
  template <typename T>
  std::vector<absl::StatusOr<T>> AskLiveShards(
      const std::function<absl::StatusOr<T>(CacheStoreClient&)>& call);

  const ShardedClientOptions options_;
  const ShardEndpoints endpoints_;
  CallPool pool_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Shard>> by_target_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const View> view_ ABSL_GUARDED_BY(mu_);
  absl::Mutex refresh_mu_;  // one Refresh at a time

  absl::Mutex leases_mu_;
  uint64_t next_lease_ ABSL_GUARDED_BY(leases_mu_) = 1;
  absl::flat_hash_map<uint64_t, std::unique_ptr<LeaseRecord>> leases_ ABSL_GUARDED_BY(leases_mu_);
  // Where the blocks of held leases are: key -> the shards that reported it, best first.
  struct Location {
    std::vector<std::shared_ptr<Shard>> holders;
    uint32_t leases = 0;
  };
  absl::flat_hash_map<BlockKey, Location> located_ ABSL_GUARDED_BY(leases_mu_);

  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread refresher_;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SHARDED_CLIENT_H_
